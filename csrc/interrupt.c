/* Interrupt masking and eventfd signalling (memif-protocol.md section 5, "Interrupts").
 *
 * The eventfd is one open file shared with the peer, so O_NONBLOCK is the peer's to clear too,
 * and its counter the peer's to saturate, at any moment: neither call below may rely on either.
 * Reading uses preadv2(RWF_NOWAIT), as a raw system call: glibc's wrapper is a 2.26 symbol,
 * and calling the kernel directly keeps the library's glibc floor at 2.17 (manylinux2014). Writing has no such flag (pwritev2 RWF_NOWAIT is EOPNOTSUPP
 * on an eventfd, which has no write_iter), and a poll before the write only narrows the race,
 * so the write runs under the calling thread's timer guard (guard.c), which turns a blocked
 * write into EINTR. Either way a write that would block means a saturated counter: the peer is
 * signalled already, so that is success. The poll stays in front: a peer that keeps the counter
 * saturated then costs one poll per burst, not one timer period. */
#define _GNU_SOURCE
#include "guard.h"
#include "memif_ct.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* Older headers (glibc 2.17) know neither; the numbers are the kernel's ABI. */
#ifndef SYS_preadv2
#if defined(__x86_64__)
#define SYS_preadv2 327
#elif defined(__aarch64__)
#define SYS_preadv2 286
#endif
#endif
#ifndef RWF_NOWAIT
#define RWF_NOWAIT 0x00000008
#endif

/* The offset -1 (the current position) goes as two longs (low, high) as glibc splits it; on a
 * 64-bit kernel the low one is the whole offset. */
__attribute__((weak)) ssize_t memif_ct_read_nowait(int fd, struct iovec *iov)
{
#ifdef SYS_preadv2
    return (ssize_t)syscall(SYS_preadv2, fd, iov, 1, -1L, -1L, RWF_NOWAIT);
#else
    (void)fd;
    (void)iov;
    errno = ENOSYS;
    return -1;
#endif
}

void memif_ct_queue_set_polling(memif_ct_queue_t *q, int polling)
{
    if (!q || !q->ring || q->tx)
        return; /* the receiver owns the flag of the ring it reads */
    atomic_store_explicit(&q->ring->flags, polling ? MEMIF_CT_RING_FLAG_MASK_INT : 0, memory_order_release);
    /* Then the caller reads the ring's index to see whether to sleep: a store then a load, which
     * the CPU may reorder (see memif_ct_queue_needs_signal). */
    atomic_thread_fence(memory_order_seq_cst);
}

int memif_ct_queue_set_eventfd(memif_ct_queue_t *q, int fd)
{
    if (!q)
        return MEMIF_CT_ERR_NULL;
    if (fd < -1)
        return MEMIF_CT_ERR_ARG;
    q->eventfd = fd;
    return MEMIF_CT_OK;
}

int memif_ct_queue_needs_signal(const memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return 0;
    /* The transmitter stored its index, the receiver its flag; each now loads the other's. Without
     * a full fence between, both loads may see the old value (x86 reorders a store with a later
     * load): the receiver that just left polling mode sleeps on a packet it was not signalled for. */
    atomic_thread_fence(memory_order_seq_cst);
    return !(atomic_load_explicit(&q->ring->flags, memory_order_acquire) & MEMIF_CT_RING_FLAG_MASK_INT);
}

/* One write or read of the 8-byte counter under the calling thread's guard (guard.c): EINTR
 * if it blocked for a guard period. errno is the call's. */
static ssize_t bounded_rw(int fd, uint64_t *value, int writing)
{
    int armed = memif_ct_guard_arm();
    ssize_t r = writing ? write(fd, value, sizeof(*value)) : read(fd, value, sizeof(*value));
    int err = errno;
    if (armed)
        memif_ct_guard_disarm();
    errno = err;
    return r;
}

int memif_ct_eventfd_signal(int fd)
{
    if (fd < 0)
        return -EBADF;
    struct pollfd p = {.fd = fd, .events = POLLOUT, .revents = 0};
    int ready = poll(&p, 1, 0);
    if (ready < 0)
        return -errno;
    if (p.revents & POLLNVAL)
        return -EBADF;
    if (ready == 0 || !(p.revents & POLLOUT)) {
        /* Not writable now: a saturated counter (the peer is signalled already), unless the
         * file is not open for writing at all (a caller's mistake). */
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0)
            return -errno;
        return (flags & O_ACCMODE) == O_RDONLY ? -EBADF : 0;
    }
    uint64_t one = 1;
    ssize_t r = bounded_rw(fd, &one, 1);
    if (r == (ssize_t)sizeof(one))
        return 0;
    /* EAGAIN or EINTR: only a write that found the counter saturated waits at all. */
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return r < 0 ? -errno : -EIO;
}

int64_t memif_ct_eventfd_clear(int fd)
{
    if (fd < 0)
        return -EBADF;
    uint64_t value = 0;
    struct iovec iov = {.iov_base = &value, .iov_len = sizeof(value)};
    for (;;) {
        ssize_t r = memif_ct_read_nowait(fd, &iov);
        if (r == (ssize_t)sizeof(value))
            return (int64_t)(value & INT64_MAX);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        if (r < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS))
            break; /* a kernel without RWF_NOWAIT on eventfd: fall back below */
        return r < 0 ? -errno : -EIO;
    }
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN))
        return 0;
    /* The peer may read the counter to 0 (and clear O_NONBLOCK) after the poll. */
    ssize_t r = bounded_rw(fd, &value, 0);
    if (r == (ssize_t)sizeof(value))
        return (int64_t)(value & INT64_MAX);
    return (r < 0 && errno != EAGAIN && errno != EINTR) ? -errno : 0;
}
