/* Copy-mode burst TX for both roles, and ring occupancy (memif-protocol.md section 5,
 * "Ownership"); RX is rx.c's.
 *
 * Trust rules: our own index (client head, server tail) is kept in the queue and only ever
 * stored to the ring; the peer's index is read once per burst with acquire ordering and checked
 * for plausibility; every descriptor the peer could have written is copied to a local once and
 * validated against the region table before any buffer is touched. */
#include "internal.h"

#include <string.h>

/* ---- TX ---- */

/* Lengths are checked before anything is published so a bad burst changes nothing. A wrong
 * call (ERR_ARG) is reported before a packet that is merely too big (ERR_TOO_BIG). */
static int check_tx_lengths(const memif_ct_queue_t *q, size_t data_size, const uint32_t *lengths, uint32_t n_pkts,
                            int exact)
{
    size_t total = 0;
    int rc = MEMIF_CT_OK;
    /* A client chain longer than the ring could never be published: ceil(len / bsize) > ring
     * size, that is len > ring size * bsize (no division per packet). */
    const uint64_t most = q->role == MEMIF_CT_ROLE_CLIENT ? (uint64_t)q->ring_size * q->buffer_size : UINT64_MAX;
    for (uint32_t i = 0; i < n_pkts; i++) {
        if (lengths[i] == 0 || lengths[i] > data_size - total)
            return MEMIF_CT_ERR_ARG;
        total += lengths[i];
        if (lengths[i] > most)
            rc = MEMIF_CT_ERR_TOO_BIG;
    }
    if (exact && total != data_size)
        return MEMIF_CT_ERR_ARG;
    return rc;
}

/* Client on S2M: the client owns every buffer of the ring, so descriptors are written from its
 * own slot arithmetic and nothing is read back from shared memory but the server's tail. */
static int client_tx(memif_ct_queue_t *q, const uint8_t *data, const uint32_t *lengths, uint32_t n_pkts)
{
    memif_ct_ring_t *ring = q->ring;
    uint16_t head = q->last_head;
    memif_ct_pool_t *pool = q->pool_state == MEMIF_CT_POOL_SET ? q->pool : NULL;
    uint32_t free_slots;
    if (pool) {
        /* Reclaim and free slots from one read of the tail (memif_ct_reclaim_released). */
        int32_t room = memif_ct_reclaim_released(q, NULL);
        if (room < 0)
            return 0; /* counted in bad_ring */
        free_slots = (uint32_t)room;
    } else {
        uint16_t tail = load_acquire(&ring->tail);
        uint16_t used = (uint16_t)(head - tail);
        if (used > q->ring_size) {
            q->stats.bad_ring++;
            return 0;
        }
        free_slots = q->ring_size - used;
    }
    const uint32_t bsize = q->buffer_size;
    uint32_t sent = 0;
    size_t pos = 0;
    uint64_t bytes = 0, chains = 0; /* counted here, stored once: the stores below may alias q */
    /* What the loop reads of q and the pool, read once: memcpy may alias them. */
    memif_ct_pool_cursor_t cur = {0}; /* (set below when there is a pool) */
    if (pool)
        memif_ct_pool_cursor_init(&cur, pool);
    memif_ct_desc_t *desc = ring->desc;
    uint32_t *slot_buf = q->slot_buf;
    const uint16_t mask = q->mask, own_region = q->buffer_region;
    const uint64_t own_offset = q->buffer_offset;
    uint8_t *own_base = pool ? NULL : q->regions[own_region].base;
    const int movsb = shm_copy_movsb();
    int no_space = 0;
    for (; sent < n_pkts; sent++) {
        uint32_t len = lengths[sent];
        uint32_t slots = len <= bsize ? 1 : (len + bsize - 1) / bsize; /* no division for most */
        /* Out of pool buffers is out of space too: never a partial chain. */
        if (slots > free_slots || (pool && slots > cur.top)) {
            no_space = 1;
            break;
        }
        uint32_t left = len;
        while (left) {
            uint16_t slot = head & mask;
            uint32_t n = left < bsize ? left : bsize;
            uint16_t region = own_region;
            uint64_t off;
            uint8_t *buf;
            if (pool) { /* a FREE pool buffer the slot now holds */
                uint32_t b = memif_ct_pool_cursor_take(&cur);
                slot_buf[slot] = b;
                buf = memif_ct_pool_cursor_locate(&cur, b, &region, &off);
            } else { /* slot arithmetic */
                off = own_offset + (uint64_t)slot * bsize;
                buf = own_base + off;
            }
            shm_copy(buf, data + pos, n, movsb);
            memif_ct_desc_t *d = &desc[slot];
            d->region = region;
            d->offset = (uint32_t)off;
            d->length = n;
            left -= n;
            pos += n;
            d->flags = left ? MEMIF_CT_DESC_FLAG_NEXT : 0;
            head++;
        }
        free_slots -= slots;
        bytes += len;
        chains += slots > 1;
    }
    if (pool)
        memif_ct_pool_cursor_done(&cur);
    q->stats.no_space += no_space;
    q->stats.packets += sent;
    q->stats.bytes += bytes;
    q->stats.chains += chains;
    if (head != q->last_head) {
        store_release(&ring->head, head);
        q->last_head = head;
    }
    return (int)sent;
}

/* Server on M2S: fills buffers the client posted. A bad posted descriptor is handed back
 * empty (length 0, no NEXT) without touching its buffer, together with any slots already
 * planned for the packet, and the packet is retried on the following slots. */
static int server_tx(memif_ct_queue_t *q, const uint8_t *data, const uint32_t *lengths, uint32_t n_pkts)
{
    memif_ct_ring_t *ring = q->ring;
    uint16_t tail = q->last_tail;
    uint16_t head = load_acquire(&ring->head);
    uint16_t avail = (uint16_t)(head - tail);
    if (avail > q->ring_size) {
        q->stats.bad_ring++;
        return 0;
    }
    uint32_t sent = 0;
    size_t pos = 0;
    uint64_t bytes = 0, chains = 0; /* stored once, as in client_tx */
    const int movsb = shm_copy_movsb();
    while (sent < n_pkts) {
        uint32_t len = lengths[sent];
        /* Plan: find how many posted slots carry len bytes, validating each. */
        uint64_t capacity = 0;
        uint16_t k = 0;
        int bad = 0;
        while (capacity < len && k < avail) {
            memif_ct_desc_t d = desc_read(&ring->desc[(uint16_t)(tail + k) & q->mask]);
            k++;
            if (d.length == 0 || !buffer_at(q, d.region, d.offset, d.length)) {
                bad = 1;
                break;
            }
            capacity += d.length;
        }
        if (bad) {
            for (uint16_t i = 0; i < k; i++) {
                memif_ct_desc_t *d = &ring->desc[(uint16_t)(tail + i) & q->mask];
                d->length = 0;
                d->flags = 0;
            }
            q->stats.bad_desc++;
            tail = (uint16_t)(tail + k);
            avail = (uint16_t)(avail - k);
            continue;
        }
        if (capacity < len) {
            /* Every slot of the ring is posted and all of them together are too small: waiting
             * cannot help, and a caller retrying until it is sent would spin forever. Only
             * possible for the burst's first packet: each packet sent takes posted slots. */
            if (k == q->ring_size)
                return MEMIF_CT_ERR_TOO_BIG;
            q->stats.no_space++;
            break;
        }
        /* Fill: re-read each descriptor once more and re-validate; a peer that changed one
         * between the passes gets an empty slot, and the packet's bytes are simply cut short. */
        uint32_t left = len;
        for (uint16_t i = 0; i < k; i++) {
            memif_ct_desc_t *dp = &ring->desc[(uint16_t)(tail + i) & q->mask];
            memif_ct_desc_t d = desc_read(dp);
            uint8_t *buf = buffer_at(q, d.region, d.offset, d.length);
            uint32_t n = 0;
            if (buf && d.length) {
                n = left < d.length ? left : d.length;
                shm_copy(buf, data + pos + (len - left), n, movsb);
            } else {
                q->stats.bad_desc++;
            }
            left -= n;
            dp->length = n;
            dp->flags = (i + 1 < k) ? MEMIF_CT_DESC_FLAG_NEXT : 0;
        }
        pos += len;
        tail = (uint16_t)(tail + k);
        avail = (uint16_t)(avail - k);
        sent++;
        bytes += len;
        chains += k > 1;
    }
    q->stats.packets += sent;
    q->stats.bytes += bytes;
    q->stats.chains += chains;
    if (tail != q->last_tail) {
        store_release(&ring->tail, tail);
        q->last_tail = tail;
    }
    return (int)sent;
}

static int tx_burst(memif_ct_queue_t *q, const uint8_t *data, size_t data_size, const uint32_t *lengths,
                    uint32_t n_pkts, int exact)
{
    if (!q || !q->ring || (n_pkts && (!data || !lengths)))
        return MEMIF_CT_ERR_NULL;
    if (!q->tx)
        return MEMIF_CT_ERR_DIRECTION;
    int rc = check_tx_lengths(q, data_size, lengths, n_pkts, exact);
    if (rc != MEMIF_CT_OK)
        return rc;
    if (q->reserved || pool_blocks_traffic(q))
        return MEMIF_CT_ERR_STATE;
    if (n_pkts > INT32_MAX)
        n_pkts = INT32_MAX;
    int sent = q->role == MEMIF_CT_ROLE_CLIENT ? client_tx(q, data, lengths, n_pkts) : server_tx(q, data, lengths, n_pkts);
    memif_ct_tx_signal(q, sent);
    return sent;
}

int memif_ct_tx_burst(memif_ct_queue_t *q, const uint8_t *data, size_t data_size, const uint32_t *lengths,
                      uint32_t n_pkts)
{
    return tx_burst(q, data, data_size, lengths, n_pkts, 0);
}

int memif_ct_tx_burst_exact(memif_ct_queue_t *q, const uint8_t *data, size_t data_size, const uint32_t *lengths,
                            uint32_t n_pkts)
{
    return tx_burst(q, data, data_size, lengths, n_pkts, 1);
}

void memif_ct_tx_signal(const memif_ct_queue_t *q, int sent)
{
    /* One signal per burst, after the index store, so the woken peer finds every packet. */
    if (sent > 0 && q->eventfd >= 0 && memif_ct_queue_needs_signal(q))
        (void)memif_ct_eventfd_signal(q->eventfd);
}

/* ---- ring occupancy ---- */

uint32_t memif_ct_queue_pending(const memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return 0;
    memif_ct_ring_t *ring = q->ring;
    uint16_t n;
    if (q->type == MEMIF_CT_RING_TYPE_S2M && q->role == MEMIF_CT_ROLE_SERVER)
        n = (uint16_t)(load_acquire(&ring->head) - q->last_tail - q->peeked); /* our own index from our copy */
    else if (q->type == MEMIF_CT_RING_TYPE_S2M)
        n = (uint16_t)(q->last_head - load_acquire(&ring->tail));
    else if (q->role == MEMIF_CT_ROLE_CLIENT) {
        n = (uint16_t)(load_acquire(&ring->tail) - q->last_tail);
        if (n > (uint16_t)(q->last_head - q->last_tail) || n < q->peeked)
            return 0; /* beyond what we posted: rx_burst counts it as bad_ring */
        n = (uint16_t)(n - q->peeked);
    }
    else
        return 0; /* server TX on M2S: what the client has not consumed is not visible to us */
    return n > q->ring_size ? 0 : n;
}

uint32_t memif_ct_queue_free(const memif_ct_queue_t *q)
{
    if (!q || !q->ring || !q->tx)
        return 0;
    memif_ct_ring_t *ring = q->ring;
    if (q->role == MEMIF_CT_ROLE_CLIENT) {
        uint16_t used = (uint16_t)(q->last_head - load_acquire(&ring->tail));
        return used > q->ring_size ? 0 : q->ring_size - used;
    }
    uint16_t posted = (uint16_t)(load_acquire(&ring->head) - q->last_tail - q->reserved_slots);
    return posted > q->ring_size ? 0 : posted;
}
