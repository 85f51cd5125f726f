/* Interrupt masking and eventfd signalling (memif-protocol.md section 5, "Interrupts").
 *
 * The eventfd is one open file shared with the peer, so O_NONBLOCK is the peer's to clear too:
 * neither call below may rely on it. Reading uses preadv2(RWF_NOWAIT); writing polls first, as
 * a write only blocks when the counter is saturated, which means the peer is signalled anyway. */
#define _GNU_SOURCE
#include "memif_ct.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/uio.h>
#include <unistd.h>

void memif_ct_queue_set_polling(memif_ct_queue_t *q, int polling)
{
    if (!q || !q->ring || q->tx)
        return; /* the receiver owns the flag of the ring it reads */
    atomic_store_explicit(&q->ring->flags, polling ? MEMIF_CT_RING_FLAG_MASK_INT : 0, memory_order_release);
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
    return !(atomic_load_explicit(&q->ring->flags, memory_order_acquire) & MEMIF_CT_RING_FLAG_MASK_INT);
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
    for (;;) {
        ssize_t r = write(fd, &one, sizeof(one));
        if (r == (ssize_t)sizeof(one))
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        return r < 0 ? -errno : -EIO;
    }
}

int64_t memif_ct_eventfd_clear(int fd)
{
    if (fd < 0)
        return -EBADF;
    uint64_t value = 0;
    struct iovec iov = {.iov_base = &value, .iov_len = sizeof(value)};
    for (;;) {
        ssize_t r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
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
    ssize_t r = read(fd, &value, sizeof(value));
    if (r == (ssize_t)sizeof(value))
        return (int64_t)(value & INT64_MAX);
    return (r < 0 && errno != EAGAIN) ? -errno : 0;
}
