/* Copy-mode burst TX/RX for both roles (memif-protocol.md section 5, "Ownership").
 *
 * Trust rules: our own index (client head, server tail) is kept in the queue and only ever
 * stored to the ring; the peer's index is read once per burst with acquire ordering and checked
 * for plausibility; every descriptor the peer could have written is copied to a local once and
 * validated against the region table before any buffer is touched. */
#include "memif_ct.h"

#include <string.h>

static inline uint16_t load_acquire(_Atomic uint16_t *p) { return atomic_load_explicit(p, memory_order_acquire); }

static inline void store_release(_Atomic uint16_t *p, uint16_t v)
{
    atomic_store_explicit(p, v, memory_order_release);
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

/* ---- TX ---- */

/* Lengths are checked before anything is published so a bad burst changes nothing. A wrong
 * call (ERR_ARG) is reported before a packet that is merely too big (ERR_TOO_BIG). */
static int check_tx_lengths(const memif_ct_queue_t *q, size_t data_size, const uint32_t *lengths, uint32_t n_pkts)
{
    size_t total = 0;
    int rc = MEMIF_CT_OK;
    for (uint32_t i = 0; i < n_pkts; i++) {
        if (lengths[i] == 0 || lengths[i] > data_size - total)
            return MEMIF_CT_ERR_ARG;
        total += lengths[i];
        /* A client chain longer than the ring could never be published. */
        if (q->role == MEMIF_CT_ROLE_CLIENT &&
            ((uint64_t)lengths[i] + q->buffer_size - 1) / q->buffer_size > q->ring_size)
            rc = MEMIF_CT_ERR_TOO_BIG;
    }
    return rc;
}

/* Client on S2M: the client owns every buffer of the ring, so descriptors are written from its
 * own slot arithmetic and nothing is read back from shared memory but the server's tail. */
static int client_tx(memif_ct_queue_t *q, const uint8_t *data, const uint32_t *lengths, uint32_t n_pkts)
{
    memif_ct_ring_t *ring = q->ring;
    uint16_t head = q->last_head;
    uint16_t tail = load_acquire(&ring->tail);
    uint16_t used = (uint16_t)(head - tail);
    if (used > q->ring_size) {
        q->stats.bad_ring++;
        return 0;
    }
    uint32_t free_slots = q->ring_size - used;
    const uint32_t bsize = q->buffer_size;
    uint8_t *region_base = q->regions[q->buffer_region].base;
    uint32_t sent = 0;
    size_t pos = 0;
    for (; sent < n_pkts; sent++) {
        uint32_t len = lengths[sent];
        uint32_t slots = (len + bsize - 1) / bsize;
        if (slots > free_slots) {
            q->stats.no_space++;
            break;
        }
        uint32_t left = len;
        while (left) {
            uint16_t slot = head & q->mask;
            uint32_t n = left < bsize ? left : bsize;
            uint64_t off = q->buffer_offset + (uint64_t)slot * bsize;
            memcpy(region_base + off, data + pos, n);
            memif_ct_desc_t *d = &ring->desc[slot];
            d->region = q->buffer_region;
            d->offset = (uint32_t)off;
            d->length = n;
            left -= n;
            pos += n;
            d->flags = left ? MEMIF_CT_DESC_FLAG_NEXT : 0;
            head++;
        }
        free_slots -= slots;
        q->stats.packets++;
        q->stats.bytes += len;
        q->stats.chains += slots > 1;
    }
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
                memcpy(buf, data + pos + (len - left), n);
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
        q->stats.packets++;
        q->stats.bytes += len;
        q->stats.chains += k > 1;
    }
    if (tail != q->last_tail) {
        store_release(&ring->tail, tail);
        q->last_tail = tail;
    }
    return (int)sent;
}

int memif_ct_tx_burst(memif_ct_queue_t *q, const uint8_t *data, size_t data_size, const uint32_t *lengths,
                      uint32_t n_pkts)
{
    if (!q || !q->ring || (n_pkts && (!data || !lengths)))
        return MEMIF_CT_ERR_NULL;
    if (!q->tx)
        return MEMIF_CT_ERR_DIRECTION;
    int rc = check_tx_lengths(q, data_size, lengths, n_pkts);
    if (rc != MEMIF_CT_OK)
        return rc;
    if (n_pkts > INT32_MAX)
        n_pkts = INT32_MAX;
    int sent = q->role == MEMIF_CT_ROLE_CLIENT ? client_tx(q, data, lengths, n_pkts) : server_tx(q, data, lengths, n_pkts);
    /* One signal per burst, after the index store, so the woken peer finds every packet. */
    if (sent > 0 && q->eventfd >= 0 && memif_ct_queue_needs_signal(q))
        (void)memif_ct_eventfd_signal(q->eventfd);
    return sent;
}

/* ---- RX ---- */

int memif_ct_refill(memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_CLIENT || q->type != MEMIF_CT_RING_TYPE_M2S)
        return MEMIF_CT_ERR_DIRECTION;
    memif_ct_ring_t *ring = q->ring;
    uint16_t head = q->last_head;
    uint16_t n = (uint16_t)(q->ring_size - (uint16_t)(head - q->last_tail));
    for (uint16_t i = 0; i < n; i++) {
        uint16_t slot = (uint16_t)(head + i) & q->mask;
        memif_ct_desc_t *d = &ring->desc[slot];
        d->flags = 0;
        d->region = q->buffer_region;
        d->length = q->buffer_size;
        d->offset = (uint32_t)(q->buffer_offset + (uint64_t)slot * q->buffer_size);
    }
    if (n) {
        head = (uint16_t)(head + n);
        store_release(&ring->head, head);
        q->last_head = head;
    }
    return n;
}

enum chain_state { CHAIN_OK, CHAIN_BAD, CHAIN_TOO_BIG, CHAIN_INCOMPLETE };

/* One rx_burst call: the caller's output, and what the walk found. */
typedef struct {
    uint8_t *out;
    size_t out_size;
    uint32_t *lengths;
    uint32_t max_pkts;
    uint32_t flags;    /* MEMIF_CT_RX_* */
    uint32_t n;        /* packets delivered */
    int kept_too_big;  /* KEEP_TOO_BIG: a packet was left in the ring, its length in lengths[0] */
} rx_call_t;

/* The buffer of one received segment, or NULL if the descriptor is not one a correct peer
 * writes. Any role: non-zero length, wholly inside a mapped region (protocol s5). Client (M2S):
 * also the very buffer we posted in that slot, holding no more than we posted: the server fills
 * our buffers and has no say in where they are. */
static inline const uint8_t *rx_segment(const memif_ct_queue_t *q, uint16_t index, memif_ct_desc_t d)
{
    if (d.length == 0)
        return NULL;
    if (q->role == MEMIF_CT_ROLE_CLIENT &&
        (d.region != q->buffer_region || d.length > q->buffer_size ||
         d.offset != q->buffer_offset + (uint64_t)(index & q->mask) * q->buffer_size))
        return NULL;
    return buffer_at(q, d.region, d.offset, d.length);
}

/* Server (S2M): mark consumed slots before releasing them. Every sender writes a non-zero
 * length into each slot it publishes (none reads it back: clients size S2M buffers from their
 * own buffer size), so a slot that comes back with length 0 was re-published without being
 * rewritten - what a sender that overran the ring does (DPDK 22.11, TESTPMD_NOTES.md) - and is
 * rejected as a bad descriptor instead of being delivered a second time. */
static inline void rx_mark_consumed(memif_ct_queue_t *q, uint16_t first, uint16_t k)
{
    if (q->role != MEMIF_CT_ROLE_SERVER)
        return;
    for (uint16_t i = 0; i < k; i++)
        ((volatile memif_ct_desc_t *)&q->ring->desc[(uint16_t)(first + i) & q->mask])->length = 0;
}

/* Consume whole packets from slots [start, start + avail). Returns the slots consumed. One pass
 * per chain: bytes are copied while walking, every descriptor is validated (also after the
 * chain has outgrown the buffer, so that its whole length is known), and a chain that turns out
 * bad, too big or unfinished is abandoned without advancing out_pos. */
static uint16_t rx_chains(memif_ct_queue_t *q, uint16_t start, uint16_t avail, rx_call_t *c)
{
    memif_ct_ring_t *ring = q->ring;
    uint16_t consumed = 0;
    size_t out_pos = 0;
    while (c->n < c->max_pkts && consumed < avail) {
        uint16_t left = (uint16_t)(avail - consumed);
        uint16_t first = (uint16_t)(start + consumed);
        uint16_t k = 0;
        uint64_t total = 0; /* < 2^46: at most 16384 segments of < 2^32 bytes */
        enum chain_state state = CHAIN_OK;
        int bad_seen = 0; /* counted once, when the chain is consumed, not on every poll */
        int bad_chain = 0;
        for (;;) {
            if (k == left) {
                /* NEXT on the last published slot: the rest may still come, unless the whole
                 * ring is this one chain, which can never end. */
                if (left == q->ring_size) {
                    state = CHAIN_BAD;
                    bad_chain = 1;
                } else {
                    state = CHAIN_INCOMPLETE;
                }
                break;
            }
            uint16_t index = (uint16_t)(first + k);
            memif_ct_desc_t d = desc_read(&ring->desc[index & q->mask]);
            k++;
            if (state != CHAIN_BAD) {
                const uint8_t *buf = rx_segment(q, index, d);
                if (!buf) {
                    state = CHAIN_BAD;
                    bad_seen = 1;
                } else {
                    /* While OK, total <= out_size - out_pos: the subtraction cannot wrap. */
                    if (state == CHAIN_OK && d.length <= c->out_size - out_pos - total)
                        memcpy(c->out + out_pos + total, buf, d.length);
                    else
                        state = CHAIN_TOO_BIG;
                    total += d.length;
                }
            }
            if (!(d.flags & MEMIF_CT_DESC_FLAG_NEXT))
                break;
        }
        if (state == CHAIN_INCOMPLETE) {
            /* A correct sender never publishes part of a chain (protocol s5). Wait for the rest
             * as before, but remember it: the chain is counted in bad_chain when consumed. */
            if (!q->partial_valid || q->partial_start != first) {
                q->partial_valid = 1;
                q->partial_start = first;
            }
            break;
        }
        if (state == CHAIN_OK && total > UINT32_MAX)
            state = CHAIN_TOO_BIG; /* lengths[] holds u32: no buffer can ever take it */
        if (state == CHAIN_TOO_BIG && total <= UINT32_MAX) {
            if (out_pos > 0)
                break; /* may fit into an empty buffer on the next call */
            if (c->flags & MEMIF_CT_RX_KEEP_TOO_BIG) {
                c->lengths[0] = (uint32_t)total;
                c->kept_too_big = 1;
                break;
            }
        }
        if (q->partial_valid && q->partial_start == first) {
            q->partial_valid = 0;
            bad_chain = 1;
        }
        rx_mark_consumed(q, first, k);
        consumed = (uint16_t)(consumed + k);
        q->stats.bad_desc += (uint64_t)bad_seen;
        q->stats.bad_chain += (uint64_t)bad_chain;
        if (state != CHAIN_OK) {
            q->stats.drops++;
            continue;
        }
        c->lengths[c->n++] = (uint32_t)total;
        out_pos += total;
        q->stats.packets++;
        q->stats.bytes += total;
        q->stats.chains += k > 1;
    }
    return consumed;
}

int memif_ct_rx_burst_ex(memif_ct_queue_t *q, uint8_t *out, size_t out_size, uint32_t *lengths, uint32_t max_pkts,
                         uint32_t flags)
{
    if (!q || !q->ring || (max_pkts && (!out || !lengths)))
        return MEMIF_CT_ERR_NULL;
    if (q->tx)
        return MEMIF_CT_ERR_DIRECTION;
    if (flags & ~MEMIF_CT_RX_KEEP_TOO_BIG)
        return MEMIF_CT_ERR_ARG;
    rx_call_t c = {out, out_size, lengths, max_pkts > INT32_MAX ? INT32_MAX : max_pkts, flags, 0, 0};
    memif_ct_ring_t *ring = q->ring;
    if (q->role == MEMIF_CT_ROLE_SERVER) {
        /* S2M: the client publishes up to head; we release by storing tail. */
        uint16_t head = load_acquire(&ring->head);
        uint16_t avail = (uint16_t)(head - q->last_tail);
        if (avail > q->ring_size) {
            /* Impossible head (a client that overran the ring, DPDK 22.11): adopt it, giving up
             * what lies between (counted in skipped), so the client sees a free ring again
             * instead of both sides stalling. A head that moved back is adopted too: the slots
             * it re-publishes carry our consumed mark unless rewritten, so none is delivered
             * twice (rx_mark_consumed). */
            q->stats.bad_ring++;
            if (avail < 0x8000u)
                q->stats.skipped += avail;
            q->partial_valid = 0;
            q->last_tail = head;
            store_release(&ring->tail, head);
            return 0;
        }
        uint16_t used = rx_chains(q, q->last_tail, avail, &c);
        if (used) {
            q->last_tail = (uint16_t)(q->last_tail + used);
            store_release(&ring->tail, q->last_tail);
        }
    } else {
        /* M2S: the server publishes up to tail, never beyond what we posted; we release by
         * re-posting buffers (advancing head). */
        uint16_t tail = load_acquire(&ring->tail);
        uint16_t avail = (uint16_t)(tail - q->last_tail);
        uint16_t posted = (uint16_t)(q->last_head - q->last_tail);
        if (avail > posted) {
            /* The server published slots we never posted. DPDK 22.11's TX does this with chains:
             * its free-slot check is off by one, then its free counter wraps and it runs on past
             * our head. Reading on would mean reading buffers it is still overwriting; waiting
             * would stall until its tail wraps 65536 slots later. So adopt its tail (what lies
             * between is lost, counted in skipped) and post a fresh ring of buffers after it.
             * A tail that moved back behind what we consumed is held, never followed: we
             * would re-post and re-read buffers we already handed out, and nothing in a
             * descriptor the server may leave unwritten can tell a stale slot from a new one. */
            q->stats.bad_ring++;
            if (avail >= 0x8000u) {
                memif_ct_refill(q); /* post what was not posted yet: slots past our head only */
                return 0;
            }
            q->stats.skipped += avail;
            q->partial_valid = 0;
            q->last_tail = tail;
            q->last_head = tail;
            memif_ct_refill(q);
            return 0;
        }
        uint16_t used = rx_chains(q, q->last_tail, avail, &c);
        q->last_tail = (uint16_t)(q->last_tail + used);
        memif_ct_refill(q);
    }
    return c.kept_too_big ? MEMIF_CT_ERR_TOO_BIG : (int)c.n;
}

int memif_ct_rx_burst(memif_ct_queue_t *q, uint8_t *out, size_t out_size, uint32_t *lengths, uint32_t max_pkts)
{
    return memif_ct_rx_burst_ex(q, out, out_size, lengths, max_pkts, 0);
}

/* ---- ring occupancy ---- */

uint32_t memif_ct_queue_pending(const memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return 0;
    memif_ct_ring_t *ring = q->ring;
    uint16_t n;
    if (q->type == MEMIF_CT_RING_TYPE_S2M && q->role == MEMIF_CT_ROLE_SERVER)
        n = (uint16_t)(load_acquire(&ring->head) - q->last_tail); /* our own index from our copy */
    else if (q->type == MEMIF_CT_RING_TYPE_S2M)
        n = (uint16_t)(q->last_head - load_acquire(&ring->tail));
    else if (q->role == MEMIF_CT_ROLE_CLIENT) {
        n = (uint16_t)(load_acquire(&ring->tail) - q->last_tail);
        if (n > (uint16_t)(q->last_head - q->last_tail))
            return 0; /* beyond what we posted: rx_burst counts it as bad_ring */
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
    uint16_t posted = (uint16_t)(load_acquire(&ring->head) - q->last_tail);
    return posted > q->ring_size ? 0 : posted;
}
