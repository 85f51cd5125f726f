/* Interrupt masking and eventfd signalling (memif-protocol.md section 5, "Interrupts"). */
#include "memif_ct.h"

#include <errno.h>
#include <unistd.h>

void memif_ct_queue_set_polling(memif_ct_queue_t *q, int polling)
{
    if (!q || !q->ring || q->tx)
        return; /* the receiver owns the flag of the ring it reads */
    atomic_store_explicit(&q->ring->flags, polling ? MEMIF_CT_RING_FLAG_MASK_INT : 0, memory_order_release);
}

int memif_ct_queue_needs_signal(const memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return 0;
    return !(atomic_load_explicit(&q->ring->flags, memory_order_acquire) & MEMIF_CT_RING_FLAG_MASK_INT);
}

int memif_ct_eventfd_signal(int fd)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t r = write(fd, &one, sizeof(one));
        if (r == (ssize_t)sizeof(one))
            return 0;
        if (r < 0 && errno == EINTR)
            continue;
        /* EAGAIN: the counter is saturated, so the peer is already signalled. */
        if (r < 0 && errno == EAGAIN)
            return 0;
        return r < 0 ? -errno : -EIO;
    }
}

int64_t memif_ct_eventfd_clear(int fd)
{
    uint64_t value = 0;
    for (;;) {
        ssize_t r = read(fd, &value, sizeof(value));
        if (r == (ssize_t)sizeof(value))
            return (int64_t)(value & INT64_MAX);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return 0;
        return r < 0 ? -errno : -EIO;
    }
}
