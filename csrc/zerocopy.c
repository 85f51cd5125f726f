/* Zero-copy data path: client queues whose buffers come from a pool (per-slot buffer table),
 * TX by pool buffer (client S2M) and TX into reserved posted buffers (server M2S)
 * (memif-protocol.md section 5, "Zero-copy"; rx_peek is rx.c's).
 *
 * A pool client's S2M slot holds its buffer from publication until the server's tail passes the
 * slot; an M2S slot holds one buffer for the queue's life. The server's reservations are the
 * posted slots after its tail: a bad posted descriptor among them is marked (length 0, as it is
 * handed back) at reserve, so commit can tell it from a reserved one without storing anything. */
#include "internal.h"

#include <string.h>

/* A mark in the pool's state bytes while tx_buffers checks its arguments: a repeated index. */
#define BUF_CHECKING 3

/* ---- pool queues ---- */

/* Every segment of the pool lies where the queue's region table maps its region. */
static int pool_mapped(const memif_ct_queue_t *q, const memif_ct_pool_t *pool)
{
    for (uint32_t i = 0; i < pool->nseg; i++) {
        const memif_ct_segment_t *s = &pool->segs[i];
        if (s->region >= q->num_regions)
            return 0;
        const memif_ct_region_t *r = &q->regions[s->region];
        if (!r->base || s->offset > r->size || s->size > r->size - s->offset ||
            (uintptr_t)r->base + s->offset != (uintptr_t)s->base)
            return 0;
    }
    return 1;
}

int memif_ct_queue_set_pool(memif_ct_queue_t *q, memif_ct_pool_t *pool, uint32_t *slot_table)
{
    if (!q || !q->ring || !pool || !slot_table)
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_CLIENT)
        return MEMIF_CT_ERR_DIRECTION;
    if (q->pool_state == MEMIF_CT_POOL_SET || q->pool_state == MEMIF_CT_POOL_DROPPED)
        return MEMIF_CT_ERR_STATE;
    /* Nothing in flight: every slot's buffer is ours to choose. */
    uint16_t peer = q->type == MEMIF_CT_RING_TYPE_S2M ? load_acquire(&q->ring->tail) : q->last_tail;
    if (q->last_head != peer || q->peeked)
        return MEMIF_CT_ERR_STATE;
    if (pool->buffer_size < q->buffer_size)
        return MEMIF_CT_ERR_ARG;
    if (!pool_mapped(q, pool))
        return MEMIF_CT_ERR_LAYOUT;
    if (q->type == MEMIF_CT_RING_TYPE_M2S && pool->free_top < q->ring_size)
        return MEMIF_CT_ERR_RANGE;
    for (uint32_t s = 0; s < q->ring_size; s++) {
        slot_table[s] = MEMIF_CT_NO_BUFFER;
        if (q->type != MEMIF_CT_RING_TYPE_M2S)
            continue;
        /* M2S: the slot's buffer for the queue's life, posted by refill. */
        uint16_t region;
        uint64_t offset;
        slot_table[s] = memif_ct_pool_take(pool);
        (void)memif_ct_pool_locate(pool, slot_table[s], &region, &offset);
        memif_ct_desc_t *d = &q->ring->desc[s];
        d->flags = 0;
        d->region = region;
        d->length = q->buffer_size;
        d->offset = (uint32_t)offset;
    }
    q->pool = pool;
    q->slot_buf = slot_table;
    q->reclaimed = q->last_head;
    q->pool_state = MEMIF_CT_POOL_SET;
    return MEMIF_CT_OK;
}

int32_t memif_ct_reclaim_released(memif_ct_queue_t *q, uint32_t *given)
{
    /* One read of the tail serves both the reclaim and the caller's free-slot count: with a
     * second read, a tail that moved on in between (an honest server releasing concurrently)
     * would let TX overwrite slots whose buffers were never given back (leaked), and the next
     * reclaim would give back the buffers just published there, still in flight. */
    uint16_t tail = load_acquire(&q->ring->tail);
    uint16_t done = (uint16_t)(tail - q->reclaimed);
    if (given)
        *given = 0;
    /* A tail beyond our head, or back before what was reclaimed, releases nothing. */
    if (done > (uint16_t)(q->last_head - q->reclaimed)) {
        q->stats.bad_ring++;
        return -1;
    }
    /* Through a pool cursor: the byte store to state[] may alias the pool's counters, which
     * memif_ct_pool_give() per slot reloaded and stored each time. */
    memif_ct_pool_cursor_t cur;
    memif_ct_pool_cursor_init(&cur, q->pool);
    uint32_t *slot_buf = q->slot_buf;
    const uint16_t mask = q->mask, first = q->reclaimed;
    for (uint16_t i = 0; i < done; i++) {
        uint16_t slot = (uint16_t)(first + i) & mask;
        (void)memif_ct_pool_cursor_give(&cur, slot_buf[slot]);
        slot_buf[slot] = MEMIF_CT_NO_BUFFER;
    }
    memif_ct_pool_cursor_done(&cur);
    const uint32_t n = cur.given;
    q->reclaimed = tail;
    if (given)
        *given = n;
    return (int32_t)(q->ring_size - (uint16_t)(q->last_head - tail));
}

int memif_ct_queue_reclaim(memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_CLIENT || q->type != MEMIF_CT_RING_TYPE_S2M)
        return MEMIF_CT_ERR_DIRECTION;
    if (q->pool_state != MEMIF_CT_POOL_SET)
        return MEMIF_CT_ERR_STATE;
    uint32_t n;
    (void)memif_ct_reclaim_released(q, &n);
    return (int)n;
}

int memif_ct_tx_alloc(memif_ct_queue_t *q, uint32_t *idx, uint32_t n)
{
    int rc = memif_ct_queue_reclaim(q); /* checks q, its role and its pool */
    if (rc < 0)
        return rc;
    if (n && !idx)
        return MEMIF_CT_ERR_NULL;
    if (n > INT32_MAX)
        n = INT32_MAX;
    return (int)memif_ct_pool_alloc(q->pool, idx, n);
}

int memif_ct_queue_drop_pool(memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_CLIENT)
        return MEMIF_CT_ERR_DIRECTION;
    if (q->pool_state != MEMIF_CT_POOL_SET)
        return MEMIF_CT_ERR_STATE;
    uint32_t n = 0;
    for (uint32_t s = 0; s < q->ring_size; s++) {
        n += (uint32_t)memif_ct_pool_give(q->pool, q->slot_buf[s]);
        q->slot_buf[s] = MEMIF_CT_NO_BUFFER;
    }
    q->pool_state = MEMIF_CT_POOL_DROPPED;
    q->peeked = 0;
    return (int)n;
}

/* ---- client TX by pool buffer ---- */

/* Arguments of tx_buffers, checked before anything is published: ERR_ARG, ERR_STATE or OK. */
static int check_tx_buffers(memif_ct_pool_t *pool, const uint32_t *idx, const uint32_t *lengths, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (lengths[i] == 0 || lengths[i] > pool->buffer_size)
            return MEMIF_CT_ERR_ARG;
    uint8_t *state = pool->state; /* (a byte store may alias the pool's fields: read them once) */
    const uint32_t count = pool->count;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = idx[i];
        if (b < count && state[b] == MEMIF_CT_BUF_APP) {
            state[b] = BUF_CHECKING;
            continue;
        }
        for (uint32_t j = 0; j < i; j++)
            state[idx[j]] = MEMIF_CT_BUF_APP;
        return MEMIF_CT_ERR_STATE;
    }
    return MEMIF_CT_OK;
}

int memif_ct_tx_buffers(memif_ct_queue_t *q, const uint32_t *idx, const uint32_t *lengths, uint32_t n)
{
    if (!q || !q->ring || (n && (!idx || !lengths)))
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_CLIENT || q->type != MEMIF_CT_RING_TYPE_S2M)
        return MEMIF_CT_ERR_DIRECTION;
    if (q->pool_state != MEMIF_CT_POOL_SET)
        return MEMIF_CT_ERR_STATE;
    if (n > INT32_MAX)
        n = INT32_MAX;
    memif_ct_pool_t *pool = q->pool;
    int rc = check_tx_buffers(pool, idx, lengths, n);
    if (rc != MEMIF_CT_OK)
        return rc;
    int32_t room = memif_ct_reclaim_released(q, NULL); /* -1: impossible tail, counted */
    memif_ct_ring_t *ring = q->ring;
    uint16_t head = q->last_head;
    uint32_t free_slots = room > 0 ? (uint32_t)room : 0;
    uint32_t sent = n < free_slots ? n : free_slots;
    uint64_t bytes = 0; /* stored once, as tx_burst does */
    /* What the loop needs, read once: its stores (bytes to state[] above all) may alias q and
     * the pool. */
    memif_ct_pool_cursor_t cur;
    memif_ct_pool_cursor_init(&cur, pool);
    memif_ct_desc_t *desc = ring->desc;
    uint32_t *slot_buf = q->slot_buf;
    const uint16_t mask = q->mask;
    for (uint32_t i = 0; i < sent; i++) {
        const uint32_t b = idx[i], len = lengths[i];
        uint16_t slot = head & mask;
        uint16_t region;
        uint64_t offset;
        (void)memif_ct_pool_cursor_locate(&cur, b, &region, &offset);
        memif_ct_desc_t *d = &desc[slot];
        d->region = region;
        d->offset = (uint32_t)offset;
        d->length = len;
        d->flags = 0;
        slot_buf[slot] = b;
        cur.state[b] = MEMIF_CT_BUF_RING;
        bytes += len;
        head++;
    }
    q->stats.packets += sent;
    q->stats.bytes += bytes;
    pool->n_app -= sent;
    pool->n_ring += sent;
    for (uint32_t i = sent; i < n; i++)
        pool->state[idx[i]] = MEMIF_CT_BUF_APP;
    if (sent < n)
        q->stats.no_space++;
    if (sent) {
        store_release(&ring->head, head);
        q->last_head = head;
    }
    memif_ct_tx_signal(q, (int)sent);
    return (int)sent;
}

/* ---- server TX into reserved posted buffers ---- */

/* Posted slots after the server's tail, or -1 (counted in bad_ring) when the client's head is
 * impossible or moved back over what is reserved. */
static int32_t posted_slots(memif_ct_queue_t *q)
{
    uint16_t avail = (uint16_t)(load_acquire(&q->ring->head) - q->last_tail);
    if (avail > q->ring_size || avail < q->reserved_slots) {
        q->stats.bad_ring++;
        return -1;
    }
    return avail;
}

int memif_ct_tx_reserve(memif_ct_queue_t *q, memif_ct_buf_t *out, uint32_t n)
{
    if (!q || !q->ring || (n && !out))
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_SERVER || q->type != MEMIF_CT_RING_TYPE_M2S)
        return MEMIF_CT_ERR_DIRECTION;
    int32_t avail = posted_slots(q);
    uint32_t got = 0;
    while (got < n && q->reserved_slots < avail) {
        memif_ct_desc_t *dp = &q->ring->desc[(uint16_t)(q->last_tail + q->reserved_slots) & q->mask];
        memif_ct_desc_t d = desc_read(dp);
        uint8_t *buf = d.length ? buffer_at(q, d.region, d.offset, d.length) : NULL;
        q->reserved_slots++;
        if (!buf) {
            /* Handed back empty at commit, as tx_burst does; length 0 marks it until then. */
            dp->length = 0;
            dp->flags = 0;
            q->stats.bad_desc++;
            continue;
        }
        out[got].addr = buf;
        out[got].offset = d.offset;
        out[got].capacity = d.length;
        out[got].region = d.region;
        out[got].state = 0;
        got++;
    }
    q->reserved = (uint16_t)(q->reserved + got);
    if (!q->reserved)
        q->reserved_slots = 0; /* only bad slots: none reserved (see tx_unreserve) */
    return (int)got;
}

/* The slot of the next reserved buffer from slot offset *k (after the tail), stepping over the
 * bad ones marked at reserve; *k ends just past it. Returns its descriptor, or NULL if the
 * reserved slots hold no more. */
static memif_ct_desc_t *next_reserved(const memif_ct_queue_t *q, uint16_t *k)
{
    while (*k < q->reserved_slots) {
        memif_ct_desc_t *dp = &q->ring->desc[(uint16_t)(q->last_tail + (*k)++) & q->mask];
        if (desc_read(dp).length)
            return dp;
    }
    return NULL;
}

/* n reserved buffers committed or given up, reserved_slots already moved: the count is never
 * above the slots (the client may have zeroed reserved slots under us). Nothing reserved means
 * no slot is: bad slots kept for a commit that cannot come now would stay counted while
 * tx_burst (which checks reserved) moves the tail past them, and the next reserve would start a
 * slot too far. Unmarked, they are simply found bad again by whoever takes them next. */
static void drop_reserved(memif_ct_queue_t *q, uint32_t n)
{
    q->reserved = (uint16_t)(q->reserved - n);
    if (q->reserved > q->reserved_slots)
        q->reserved = q->reserved_slots;
    if (!q->reserved)
        q->reserved_slots = 0;
}

int memif_ct_tx_commit(memif_ct_queue_t *q, const uint32_t *lengths, uint32_t n)
{
    if (!q || !q->ring || (n && !lengths))
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_SERVER || q->type != MEMIF_CT_RING_TYPE_M2S)
        return MEMIF_CT_ERR_DIRECTION;
    if (n > q->reserved)
        return MEMIF_CT_ERR_ARG;
    /* Check every length against its buffer as posted now, before anything is published; a
     * descriptor the client rewrote into a bad one since reserve is simply handed back empty. */
    uint16_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        memif_ct_desc_t *dp = next_reserved(q, &k);
        memif_ct_desc_t d = dp ? desc_read(dp) : (memif_ct_desc_t){0, 0, 0, 0, 0};
        if (lengths[i] == 0 || (dp && buffer_at(q, d.region, d.offset, d.length) && lengths[i] > d.length))
            return MEMIF_CT_ERR_ARG;
    }
    k = 0;
    for (uint32_t i = 0; i < n; i++) {
        memif_ct_desc_t *dp = next_reserved(q, &k);
        if (!dp)
            break; /* the client zeroed reserved slots: they were handed back already */
        memif_ct_desc_t d = desc_read(dp);
        uint32_t len = lengths[i] < d.length ? lengths[i] : d.length;
        if (!buffer_at(q, d.region, d.offset, d.length)) {
            len = 0;
            q->stats.bad_desc++;
        } else {
            q->stats.packets++;
            q->stats.bytes += len;
        }
        dp->length = len;
        dp->flags = 0;
    }
    /* Bad slots right after the last one committed go back with it. */
    while (k < q->reserved_slots && !desc_read(&q->ring->desc[(uint16_t)(q->last_tail + k) & q->mask]).length)
        k++;
    q->reserved_slots = (uint16_t)(q->reserved_slots - k);
    drop_reserved(q, n); /* (slots left with none reserved: the client un-marked a bad one) */
    if (k) {
        q->last_tail = (uint16_t)(q->last_tail + k);
        store_release(&q->ring->tail, q->last_tail);
    }
    memif_ct_tx_signal(q, (int)n);
    return (int)n;
}

uint32_t memif_ct_tx_reserved(const memif_ct_queue_t *q) { return q ? q->reserved : 0; }

int memif_ct_tx_unreserve(memif_ct_queue_t *q, uint32_t n)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_SERVER || q->type != MEMIF_CT_RING_TYPE_M2S)
        return MEMIF_CT_ERR_DIRECTION;
    if (n > q->reserved)
        return MEMIF_CT_ERR_ARG;
    /* Walk back over the reserved slots until n good ones are dropped; bad ones (marked with
     * length 0 at reserve) before the last dropped stay reserved, to go back with a commit. */
    uint16_t k = q->reserved_slots;
    for (uint32_t dropped = 0; dropped < n && k > 0;) {
        k--;
        if (desc_read(&q->ring->desc[(uint16_t)(q->last_tail + k) & q->mask]).length)
            dropped++;
    }
    q->reserved_slots = k;
    drop_reserved(q, n);
    return MEMIF_CT_OK;
}
