/* Burst RX for both roles, copying (rx_burst) or not (rx_peek/rx_release), and the M2S client's
 * refill (memif-protocol.md section 5, "Ownership").
 *
 * Trust rules (as burst.c): the peer's index is read once per call with acquire ordering and
 * checked for plausibility; every descriptor is copied to a local once and validated before any
 * buffer is touched. rx_burst and rx_peek share one walk over each chain (rx_walk): they differ
 * only in where a packet's bytes end up and in when its slots are released. */
#include "internal.h"

#include <string.h>

int memif_ct_refill(memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (q->role != MEMIF_CT_ROLE_CLIENT || q->type != MEMIF_CT_RING_TYPE_M2S)
        return MEMIF_CT_ERR_DIRECTION;
    if (pool_blocks_traffic(q))
        return MEMIF_CT_ERR_STATE;
    memif_ct_ring_t *ring = q->ring;
    uint16_t head = q->last_head;
    uint16_t n = (uint16_t)(q->ring_size - (uint16_t)(head - q->last_tail));
    for (uint16_t i = 0; i < n; i++) {
        uint16_t slot = (uint16_t)(head + i) & q->mask;
        uint16_t region;
        uint64_t offset;
        slot_buffer(q, slot, &region, &offset);
        memif_ct_desc_t *d = &ring->desc[slot];
        d->flags = 0;
        d->region = region;
        d->length = q->buffer_size;
        d->offset = (uint32_t)offset;
    }
    if (n) {
        head = (uint16_t)(head + n);
        store_release(&ring->head, head);
        q->last_head = head;
    }
    return n;
}

enum chain_state { CHAIN_OK, CHAIN_BAD, CHAIN_TOO_BIG, CHAIN_INCOMPLETE };

/* One rx_burst or rx_peek call: the caller's output, and what the walk found. */
typedef struct {
    uint8_t *out;          /* rx_burst: where packets go; rx_peek: scratch for scattered chains (or NULL) */
    size_t out_size;
    size_t out_pos;        /* bytes of out used */
    uint32_t *lengths;     /* rx_burst: each packet's length */
    memif_ct_pkt_t *pkts;  /* rx_peek: each packet; NULL for rx_burst */
    uint32_t max_pkts;
    uint32_t flags;        /* MEMIF_CT_RX_* */
    uint32_t n;            /* packets delivered */
    int kept_too_big;      /* KEEP_TOO_BIG: a packet was left in the ring, its length in lengths[0] */
} rx_call_t;

/* What one walk over one chain found. */
typedef struct {
    enum chain_state state;
    uint16_t k;          /* slots walked */
    int bad_seen;        /* a bad descriptor: counted once, when the chain is consumed, not on every poll */
    int bad_chain;       /* a chain no correct sender publishes */
    int copied;          /* the bytes are at out + out_pos; else in place at addr (rx_peek) */
    uint64_t total;      /* < 2^46: at most 16384 segments of < 2^32 bytes */
    const uint8_t *addr; /* in place: the first segment */
} rx_chain_t;

/* The buffer of one received segment, or NULL if the descriptor is not one a correct peer
 * writes. Any role: non-zero length, wholly inside a mapped region (protocol s5). Client (M2S):
 * also the very buffer we posted in that slot, holding no more than we posted: the server fills
 * our buffers and has no say in where they are. */
static inline const uint8_t *rx_segment(const memif_ct_queue_t *q, uint16_t index, memif_ct_desc_t d)
{
    if (d.length == 0)
        return NULL;
    if (q->role == MEMIF_CT_ROLE_CLIENT) {
        uint16_t region;
        uint64_t offset;
        slot_buffer(q, index & q->mask, &region, &offset);
        if (d.region != region || d.length > q->buffer_size || d.offset != offset)
            return NULL;
    }
    return buffer_at(q, d.region, d.offset, d.length);
}

/* One valid segment of a chain still OK: left where it lies while the chain is contiguous in
 * memory (rx_peek), else copied after the chain's bytes into out (room bytes free there); a
 * chain that outgrows room is CHAIN_TOO_BIG. */
static inline void rx_place(rx_chain_t *ch, uint8_t *out, size_t room, const uint8_t *buf, uint32_t length)
{
    if (!ch->copied) {
        if (ch->total == 0) {
            ch->addr = buf;
            return;
        }
        if ((uintptr_t)buf == (uintptr_t)ch->addr + ch->total)
            return;
        /* Scattered: what lay in place moves to out, and the rest is copied after it. */
        ch->copied = 1;
        if (ch->total > room) {
            ch->state = CHAIN_TOO_BIG;
            return;
        }
        copy_bytes(out, ch->addr, (size_t)ch->total);
    }
    /* While OK, total <= room: the subtraction cannot wrap. */
    if (length <= room - ch->total)
        copy_bytes(out + ch->total, buf, length);
    else
        ch->state = CHAIN_TOO_BIG;
}

/* Walk the chain starting at slot index first, with left slots published. Every descriptor is
 * validated, also after the chain has outgrown the output, so that its whole length is known. */
static void rx_walk(memif_ct_queue_t *q, uint16_t first, uint16_t left, const rx_call_t *c, rx_chain_t *ch)
{
    uint8_t *out = c->out ? c->out + c->out_pos : NULL;
    size_t room = c->out_size - c->out_pos;
    memset(ch, 0, sizeof(*ch));
    ch->state = CHAIN_OK;
    ch->copied = c->pkts == NULL;
    for (;;) {
        if (ch->k == left) {
            /* NEXT on the last published slot: the rest may still come, unless the whole
             * ring is this one chain, which can never end. */
            if (left == q->ring_size) {
                ch->state = CHAIN_BAD;
                ch->bad_chain = 1;
            } else {
                ch->state = CHAIN_INCOMPLETE;
            }
            return;
        }
        uint16_t index = (uint16_t)(first + ch->k);
        memif_ct_desc_t d = desc_read(&q->ring->desc[index & q->mask]);
        ch->k++;
        if (ch->state != CHAIN_BAD) {
            const uint8_t *buf = rx_segment(q, index, d);
            if (!buf) {
                ch->state = CHAIN_BAD;
                ch->bad_seen = 1;
            } else {
                if (ch->state == CHAIN_OK)
                    rx_place(ch, out, room, buf, d.length);
                ch->total += d.length;
            }
        }
        if (!(d.flags & MEMIF_CT_DESC_FLAG_NEXT))
            return;
    }
}

/* Server (S2M): mark consumed slots before releasing them (rx_consume). Every sender writes a non-zero
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

static void rx_deliver(rx_call_t *c, const rx_chain_t *ch)
{
    if (c->pkts) {
        memif_ct_pkt_t *p = &c->pkts[c->n];
        p->addr = ch->copied ? c->out + c->out_pos : ch->addr;
        p->length = (uint32_t)ch->total;
        p->slots = ch->k;
        p->scratch = (uint16_t)ch->copied;
    } else {
        c->lengths[c->n] = (uint32_t)ch->total;
    }
    c->n++;
    if (ch->copied)
        c->out_pos += ch->total;
}

/* The common case of rx_chains, in one tight loop: the run of packets at start that each fill
 * one slot (no NEXT), are valid, fit in out (copy) and are not a chain seen unfinished before.
 * Each is delivered exactly as rx_walk + rx_deliver would; the first other slot is left to them
 * (which read its descriptor afresh). The call's counters stay in locals: memcpy may alias them.
 * Returns the slots consumed. */
static uint16_t rx_singles(memif_ct_queue_t *q, uint16_t start, uint16_t avail, rx_call_t *c)
{
    const memif_ct_desc_t *desc = q->ring->desc;
    const uint16_t mask = q->mask;
    const int partial = q->partial_valid;
    const uint16_t partial_start = q->partial_start;
    memif_ct_pkt_t *pkts = c->pkts;
    uint8_t *out = c->out;
    uint32_t *lengths = c->lengths;
    const size_t out_size = c->out_size;
    size_t pos = c->out_pos;
    uint32_t n = c->n;
    const uint32_t room = c->max_pkts - n < avail ? c->max_pkts - n : avail;
    uint64_t bytes = 0;
    uint16_t i = 0;
    for (; i < room; i++) {
        const uint16_t index = (uint16_t)(start + i);
        const memif_ct_desc_t d = desc_read(&desc[index & mask]);
        if ((d.flags & MEMIF_CT_DESC_FLAG_NEXT) || (partial && partial_start == index))
            break;
        const uint8_t *buf = rx_segment(q, index, d);
        if (!buf)
            break;
        if (pkts) { /* rx_peek: in place */
            memif_ct_pkt_t *p = &pkts[n];
            p->addr = buf;
            p->length = d.length;
            p->slots = 1;
            p->scratch = 0;
        } else {
            if (d.length > out_size - pos)
                break;
            copy_bytes(out + pos, buf, d.length);
            pos += d.length;
            lengths[n] = d.length;
        }
        n++;
        bytes += d.length;
    }
    /* Every slot walked was delivered: each stop above comes before a packet is written. */
    c->out_pos = pos;
    c->n = n;
    q->stats.packets += i;
    q->stats.bytes += bytes;
    return i;
}

/* Consume whole packets from slots [start, start + avail). Returns the slots consumed. A chain
 * that turns out bad, too big or unfinished is abandoned without advancing out_pos. */
static uint16_t rx_chains(memif_ct_queue_t *q, uint16_t start, uint16_t avail, rx_call_t *c)
{
    uint16_t consumed = 0;
    while (c->n < c->max_pkts && consumed < avail) {
        consumed = (uint16_t)(consumed + rx_singles(q, (uint16_t)(start + consumed), (uint16_t)(avail - consumed), c));
        if (c->n == c->max_pkts || consumed == avail)
            break;
        uint16_t first = (uint16_t)(start + consumed);
        rx_chain_t ch;
        rx_walk(q, first, (uint16_t)(avail - consumed), c, &ch);
        if (ch.state == CHAIN_INCOMPLETE) {
            /* A correct sender never publishes part of a chain (protocol s5). Wait for the rest
             * as before, but remember it: the chain is counted in bad_chain when consumed. */
            if (!q->partial_valid || q->partial_start != first) {
                q->partial_valid = 1;
                q->partial_start = first;
            }
            break;
        }
        if (ch.state == CHAIN_OK && ch.total > UINT32_MAX)
            ch.state = CHAIN_TOO_BIG; /* lengths[] holds u32: no buffer can ever take it */
        if (ch.state == CHAIN_TOO_BIG && ch.total <= UINT32_MAX) {
            if (c->out_pos > 0)
                break; /* may fit into an empty buffer on the next call */
            if (c->flags & MEMIF_CT_RX_KEEP_TOO_BIG) {
                c->lengths[0] = (uint32_t)ch.total;
                c->kept_too_big = 1;
                break;
            }
        }
        if (q->partial_valid && q->partial_start == first) {
            q->partial_valid = 0;
            ch.bad_chain = 1;
        }
        consumed = (uint16_t)(consumed + ch.k);
        q->stats.bad_desc += (uint64_t)ch.bad_seen;
        q->stats.bad_chain += (uint64_t)ch.bad_chain;
        if (ch.state != CHAIN_OK) {
            q->stats.drops++;
            continue;
        }
        rx_deliver(c, &ch);
        q->stats.packets++;
        q->stats.bytes += ch.total;
        q->stats.chains += ch.k > 1;
    }
    return consumed;
}

/* Give the peer back n consumed slots: the server marks them and stores its tail, the client
 * re-posts buffers. Marks go in only now, after every byte of the call was read: a buffer a
 * hostile peer laid over the ring's own descriptors reads the same whatever order we mark in. */
static void rx_consume(memif_ct_queue_t *q, uint16_t n)
{
    rx_mark_consumed(q, q->last_tail, n);
    q->last_tail = (uint16_t)(q->last_tail + n);
    if (q->role == MEMIF_CT_ROLE_SERVER) {
        if (n)
            store_release(&q->ring->tail, q->last_tail);
    } else {
        memif_ct_refill(q);
    }
}

/* The walk of one call, after the slots peeked already. rx_burst (nothing peeked) releases what it
 * consumed at once; rx_peek adds it to the peeked slots. */
static void rx_run(memif_ct_queue_t *q, rx_call_t *c)
{
    memif_ct_ring_t *ring = q->ring;
    uint16_t avail;
    if (q->role == MEMIF_CT_ROLE_SERVER) {
        /* S2M: the client publishes up to head; we release by storing tail. */
        uint16_t head = load_acquire(&ring->head);
        avail = (uint16_t)(head - q->last_tail);
        if (avail > q->ring_size && !q->peeked) {
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
            return;
        }
    } else {
        /* M2S: the server publishes up to tail, never beyond what we posted; we release by
         * re-posting buffers (advancing head). */
        uint16_t tail = load_acquire(&ring->tail);
        uint16_t posted = (uint16_t)(q->last_head - q->last_tail);
        avail = (uint16_t)(tail - q->last_tail);
        if (avail > posted && !q->peeked) {
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
                return;
            }
            q->stats.skipped += avail;
            q->partial_valid = 0;
            q->last_tail = tail;
            q->last_head = tail;
            memif_ct_refill(q);
            return;
        }
        if (avail > posted)
            avail = 0; /* impossible while slots are peeked: handled once they are released */
    }
    if (avail > q->ring_size || avail < q->peeked) {
        /* Only while slots are peeked: the peer's index moved back over them. */
        q->stats.bad_ring++;
        return;
    }
    uint16_t used = rx_chains(q, (uint16_t)(q->last_tail + q->peeked), (uint16_t)(avail - q->peeked), c);
    if (c->pkts)
        q->peeked = (uint16_t)(q->peeked + used);
    else
        rx_consume(q, used);
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
    if (q->peeked || pool_blocks_traffic(q))
        return MEMIF_CT_ERR_STATE;
    rx_call_t c = {out, out_size, 0, lengths, NULL, max_pkts > INT32_MAX ? INT32_MAX : max_pkts, flags, 0, 0};
    rx_run(q, &c);
    return c.kept_too_big ? MEMIF_CT_ERR_TOO_BIG : (int)c.n;
}

int memif_ct_rx_burst(memif_ct_queue_t *q, uint8_t *out, size_t out_size, uint32_t *lengths, uint32_t max_pkts)
{
    return memif_ct_rx_burst_ex(q, out, out_size, lengths, max_pkts, 0);
}

/* ---- RX without copying ---- */

int memif_ct_rx_peek(memif_ct_queue_t *q, memif_ct_pkt_t *pkts, uint32_t max_pkts, uint8_t *scratch,
                     size_t scratch_size)
{
    if (!q || !q->ring || (max_pkts && !pkts) || (scratch_size && !scratch))
        return MEMIF_CT_ERR_NULL;
    if (q->tx)
        return MEMIF_CT_ERR_DIRECTION;
    if (pool_blocks_traffic(q))
        return MEMIF_CT_ERR_STATE;
    rx_call_t c = {scratch, scratch_size, 0, NULL, pkts, max_pkts > INT32_MAX ? INT32_MAX : max_pkts, 0, 0, 0};
    rx_run(q, &c);
    return (int)c.n;
}

int memif_ct_rx_release(memif_ct_queue_t *q)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (q->tx)
        return MEMIF_CT_ERR_DIRECTION;
    uint16_t n = q->peeked;
    q->peeked = 0;
    rx_consume(q, n);
    return n;
}

uint32_t memif_ct_rx_peeked(const memif_ct_queue_t *q) { return q ? q->peeked : 0; }

uint64_t memif_ct_pkts_bytes(const memif_ct_pkt_t *pkts, uint32_t count)
{
    uint64_t total = 0;
    for (uint32_t i = 0; pkts && i < count; i++)
        total += pkts[i].length;
    return total;
}
