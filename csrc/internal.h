/* internal.h - internal to the library: what the data-path files share (ring index access,
 * descriptor reads, region bounds) and the pool's layout. Not installed. */
#ifndef MEMIF_CT_INTERNAL_H
#define MEMIF_CT_INTERNAL_H

#include "memif_ct.h"

#include <string.h>

/* memif_ct_queue_t.pool_state: where a client's buffers come from. */
enum {
    MEMIF_CT_POOL_NONE = 0,    /* slot math: buffer_offset + slot * buffer_size (copy mode as ever) */
    MEMIF_CT_POOL_WANTED = 1,  /* queue_init with MEMIF_CT_NO_REGION: no traffic until set_pool */
    MEMIF_CT_POOL_SET = 2,     /* slot_buf[] says which pool buffer each slot holds */
    MEMIF_CT_POOL_DROPPED = 3  /* drop_pool gave every buffer back: no traffic any more */
};

/* No buffer (slot_buf entry of an S2M slot that holds none). */
#define MEMIF_CT_NO_BUFFER UINT32_MAX

struct memif_ct_pool {
    uint32_t count;       /* buffers */
    uint32_t buffer_size;
    uint32_t nseg;
    uint32_t free_top;    /* FREE buffers: entries on stack[] */
    uint32_t n_app;
    uint32_t n_ring;
    memif_ct_segment_t *segs; /* nseg, copied into the pool's memory */
    uint32_t *seg_first;      /* nseg + 1: index of each segment's first buffer; [nseg] = count */
    uint32_t *stack;          /* count: LIFO of FREE indexes */
    uint8_t *state;           /* count: MEMIF_CT_BUF_* */
};

static inline uint16_t load_acquire(_Atomic uint16_t *p) { return atomic_load_explicit(p, memory_order_acquire); }

static inline void store_release(_Atomic uint16_t *p, uint16_t v)
{
    atomic_store_explicit(p, v, memory_order_release);
}

/* Copies of the caller's data into shared memory the peer reads (the TX paths), by the
 * library's one process-wide setting (memif_ct_copy_method()). With MEMIF_CT_COPY_MOVSB, a copy
 * of MEMIF_CT_MOVSB_MIN bytes or more is one `rep movsb`: with ERMS the CPU writes whole lines
 * without reading them first, so a line the peer's core last read is not fetched back before it
 * is overwritten. Measured on an AMD EPYC into testpmd rxonly: 1,500-byte frames 1.3x memcpy's
 * rate, 1,024 and 2,048 bytes 1.03-1.35x, 512 even, 128 bytes 0.8x (so: not below 512). Only
 * where the source is local: reading lines another core wrote, rep movsb was 0.3x memcpy (RX
 * into the caller's buffer) and 0.6x (echo's copy from RX to TX buffers), so those use memcpy.
 * Under ASan every copy is memcpy, which ASan checks; the asm it cannot see into. */
#define MEMIF_CT_MOVSB_MIN 512u
#if defined(__SANITIZE_ADDRESS__) /* gcc's ASan; clang's below */
#define MEMIF_CT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEMIF_CT_ASAN 1
#endif
#endif
#if defined(__x86_64__) && !defined(MEMIF_CT_ASAN)
#define MEMIF_CT_HAVE_MOVSB 1
#else
#define MEMIF_CT_HAVE_MOVSB 0
#endif

extern _Atomic int memif_ct_copy_movsb_; /* memif_ct_copy_method(): 1 for MEMIF_CT_COPY_MOVSB */

/* The method, read once a call (a relaxed load: a copy already running keeps its own). */
static inline int shm_copy_movsb(void)
{
    return atomic_load_explicit(&memif_ct_copy_movsb_, memory_order_relaxed);
}

/* Whether [a, a + n) and [b, b + n) share a byte. A copy's two ends can: the peer points a
 * descriptor anywhere in a region, also at bytes the caller is copying from or into (a packet
 * peeked in place and sent back, a TX buffer given as RX output). */
static inline int ranges_overlap(const void *a, const void *b, size_t n)
{
    return (uintptr_t)a < (uintptr_t)b + n && (uintptr_t)b < (uintptr_t)a + n;
}

/* memcpy(dst, src, n) where either end may be shared memory; memmove when they overlap (then
 * the bytes are whatever the peer arranged, but the copy stays defined and in bounds). */
static inline void copy_bytes(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (ranges_overlap(dst, src, n))
        memmove(dst, src, n);
    else
        memcpy(dst, src, n);
}

/* copy_bytes(dst, src, n) into shared memory the peer reads; movsb is shm_copy_movsb(). */
static inline void shm_copy(uint8_t *dst, const uint8_t *src, size_t n, int movsb)
{
    if (ranges_overlap(dst, src, n)) {
        memmove(dst, src, n);
        return;
    }
#if MEMIF_CT_HAVE_MOVSB
    if (movsb && n >= MEMIF_CT_MOVSB_MIN) {
        __asm__ volatile("rep movsb" : "+D"(dst), "+S"(src), "+c"(n) : : "memory");
        return;
    }
#else
    (void)movsb;
#endif
    memcpy(dst, src, n);
}

/* One read of a descriptor the peer may be rewriting: fields are read once, through volatile,
 * so the validated values are the ones used. */
static inline memif_ct_desc_t desc_read(const memif_ct_desc_t *p)
{
    const volatile memif_ct_desc_t *v = p;
    memif_ct_desc_t d;
    d.flags = v->flags;
    d.region = v->region;
    d.length = v->length;
    d.offset = v->offset;
    d.metadata = 0;
    return d;
}

/* Address of [offset, offset + length) in region, or NULL if that is not wholly mapped. */
static inline uint8_t *buffer_at(const memif_ct_queue_t *q, uint16_t region, uint32_t offset, uint32_t length)
{
    if (region >= q->num_regions)
        return NULL;
    const memif_ct_region_t *r = &q->regions[region];
    if (!r->base || (uint64_t)offset + length > r->size)
        return NULL;
    return r->base + offset;
}

/* Burst calls on a client queue waiting for (or done with) its pool are refused. */
static inline int pool_blocks_traffic(const memif_ct_queue_t *q)
{
    return q->pool_state == MEMIF_CT_POOL_WANTED || q->pool_state == MEMIF_CT_POOL_DROPPED;
}

/* Pool buffer idx (< count): its address, region and region offset. One segment (a copy-mode
 * ring's buffers, a zero-copy queue's arena segment) needs no search. */
static inline uint8_t *memif_ct_pool_locate(const memif_ct_pool_t *pool, uint32_t idx, uint16_t *region,
                                            uint64_t *offset)
{
    uint32_t lo = 0, hi = pool->nseg; /* the last segment whose first index is <= idx */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (pool->seg_first[mid] <= idx)
            lo = mid;
        else
            hi = mid;
    }
    const memif_ct_segment_t *s = &pool->segs[lo];
    uint64_t off = (uint64_t)(idx - pool->seg_first[lo]) * pool->buffer_size;
    *region = s->region;
    *offset = s->offset + off;
    return s->base + off;
}

/* Where a client's buffer of a slot lies: slot math, or the pool buffer slot_buf names (region
 * MEMIF_CT_NO_REGION if the slot holds none). */
static inline void slot_buffer(const memif_ct_queue_t *q, uint16_t slot, uint16_t *region, uint64_t *offset)
{
    uint32_t b = q->pool_state == MEMIF_CT_POOL_SET ? q->slot_buf[slot] : MEMIF_CT_NO_BUFFER;
    if (q->pool_state != MEMIF_CT_POOL_SET) {
        *region = q->buffer_region;
        *offset = q->buffer_offset + (uint64_t)slot * q->buffer_size;
    } else if (b == MEMIF_CT_NO_BUFFER) {
        *region = MEMIF_CT_NO_REGION;
        *offset = UINT64_MAX;
    } else {
        (void)memif_ct_pool_locate(q->pool, b, region, offset);
    }
}
/* FREE -> RING: a buffer for a ring slot, or MEMIF_CT_NO_BUFFER if none is free. */
static inline uint32_t memif_ct_pool_take(memif_ct_pool_t *pool)
{
    if (pool->free_top == 0)
        return MEMIF_CT_NO_BUFFER;
    uint32_t b = pool->stack[--pool->free_top];
    pool->state[b] = MEMIF_CT_BUF_RING;
    pool->n_ring++;
    return b;
}

/* RING -> FREE (a buffer in another state is left alone). Returns 1 if given back. */
static inline int memif_ct_pool_give(memif_ct_pool_t *pool, uint32_t idx)
{
    if (idx >= pool->count || pool->state[idx] != MEMIF_CT_BUF_RING)
        return 0;
    pool->state[idx] = MEMIF_CT_BUF_FREE;
    pool->stack[pool->free_top++] = idx;
    pool->n_ring--;
    return 1;
}
/* A pool as one burst loop uses it, its fields read once into a local: the loops' byte stores
 * (state[], memcpy) may alias the pool, so with the pool itself each iteration reloaded them and
 * chained its free_top update through memory. A pool of one segment (a queue's own, the usual)
 * needs no search per buffer. Take or give with pool_cursor_take()/_give(), then
 * pool_cursor_done(). */
typedef struct {
    memif_ct_pool_t *pool;
    uint32_t *stack;
    uint8_t *state;
    uint32_t top, taken, given, count;
    int one_segment;
    uint8_t *seg_base;
    uint64_t seg_offset, bsize;
    uint32_t seg_first;
    uint16_t seg_region;
} memif_ct_pool_cursor_t;

static inline void memif_ct_pool_cursor_init(memif_ct_pool_cursor_t *c, memif_ct_pool_t *pool)
{
    c->pool = pool;
    c->stack = pool->stack;
    c->state = pool->state;
    c->top = pool->free_top;
    c->taken = c->given = 0;
    c->count = pool->count;
    c->one_segment = pool->nseg == 1;
    c->seg_base = pool->segs[0].base;
    c->seg_offset = pool->segs[0].offset;
    c->bsize = pool->buffer_size;
    c->seg_first = pool->seg_first[0];
    c->seg_region = pool->segs[0].region;
}

/* memif_ct_pool_locate() through the cursor. */
static inline uint8_t *memif_ct_pool_cursor_locate(const memif_ct_pool_cursor_t *c, uint32_t idx, uint16_t *region,
                                                   uint64_t *offset)
{
    if (!c->one_segment)
        return memif_ct_pool_locate(c->pool, idx, region, offset);
    uint64_t rel = (uint64_t)(idx - c->seg_first) * c->bsize;
    *region = c->seg_region;
    *offset = c->seg_offset + rel;
    return c->seg_base + rel;
}

/* FREE -> RING, as memif_ct_pool_take(); the caller has checked that c->top > 0. */
static inline uint32_t memif_ct_pool_cursor_take(memif_ct_pool_cursor_t *c)
{
    uint32_t b = c->stack[--c->top];
    c->state[b] = MEMIF_CT_BUF_RING;
    c->taken++;
    return b;
}

/* RING -> FREE, as memif_ct_pool_give(): 1 if given, 0 for an index out of range or not RING. */
static inline int memif_ct_pool_cursor_give(memif_ct_pool_cursor_t *c, uint32_t idx)
{
    if (idx >= c->count || c->state[idx] != MEMIF_CT_BUF_RING)
        return 0;
    c->state[idx] = MEMIF_CT_BUF_FREE;
    c->stack[c->top++] = idx;
    c->given++;
    return 1;
}

/* Store what the loop took and gave back into the pool. */
static inline void memif_ct_pool_cursor_done(memif_ct_pool_cursor_t *c)
{
    c->pool->free_top = c->top;
    c->pool->n_ring = c->pool->n_ring + c->taken - c->given;
}

/* Client S2M with a pool: read the server's tail once and give back the buffers of the slots it
 * has passed (their count in *given, if not NULL). Returns the slots free for TX by that same
 * read, or -1 (counted in bad_ring) for a tail beyond our head or back before what was
 * reclaimed. TX must count its free slots from this, never from a read of its own. */
int32_t memif_ct_reclaim_released(memif_ct_queue_t *q, uint32_t *given);
/* Signal the peer after a TX call that queued `sent` packets, if it asks for it. */
void memif_ct_tx_signal(const memif_ct_queue_t *q, int sent);

#endif /* MEMIF_CT_INTERNAL_H */
