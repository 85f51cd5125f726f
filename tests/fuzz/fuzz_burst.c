/* fuzz_burst.c - libFuzzer target: the C burst data path against a hostile peer.
 *
 * One input is one session. Its first bytes lay out the shared memory (memif-protocol.md
 * section 5: one S2M and one M2S ring, buffers in region 0 as DPDK/VPP do or in region 1 as
 * libmemif does) and a region table with entries a peer may name but that hold nothing: an
 * unmapped one (base NULL, any size), a tiny one and an empty one. Client and server queues of
 * both rings are bound to the same memory. Every later byte drives one operation: our side's
 * tx_burst/rx_burst/refill of fuzz-chosen sizes in both roles on both rings, or the hostile
 * peer overwriting descriptors (flags, region, length, offset), head, tail, ring flags and
 * buffer bytes; binding a queue to a ring at a peer-chosen address; a reconnect.
 *
 * The harness shares no code with the library. After each call it checks, and aborts on:
 *   - a count outside [0, requested], lengths summing past the output buffer, a wrong error;
 *   - a byte of shared memory changed outside what the call may write (the snapshot taken
 *     before the call is compared byte for byte);
 *   - a received packet that is not exactly the bytes of one whole chain of descriptors that
 *     were valid when the call began (so every byte comes from inside a mapped region), chains
 *     delivered out of order, or the consumer index moving past what the peer published (a
 *     packet delivered twice for one publication);
 *   - a transmitted packet not written as the documented chain into validated buffers;
 *   - a counter that shrinks, or packets/bytes counters that disagree with what was returned;
 *   - a drop nothing counted, a process-local queue that changed between our calls.
 * Out-of-bounds access is ASan's (every region, queue and buffer is its own allocation of its
 * exact size); undefined behaviour is UBSan's, built with -fno-sanitize-recover.
 * Deterministic per input: no clock, no randomness, fresh memory for every input.
 * An input whose first byte is >= 0xC0 is a zero-copy session instead (fuzz_zc.h: pools,
 * tx_buffers/reclaim, rx_peek/rx_release, tx_reserve/commit/unreserve, drop_pool); tests/fuzz/seeds
 * holds hand-made inputs that reach each of its paths.
 *
 * Build:  CC=clang meson setup build-fuzz -Dfuzz=true && meson compile -C build-fuzz fuzz_burst
 * Run:    build-fuzz/fuzz_burst -max_total_time=600 CORPUS_DIR   (README, "Fuzzing") */
#include "memif_ct.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#define S2M MEMIF_CT_RING_TYPE_S2M
#define M2S MEMIF_CT_RING_TYPE_M2S
#define NEXT MEMIF_CT_DESC_FLAG_NEXT
#define MAX_OPS 96
#define MAX_BURST 9

enum { REG_MAIN, REG_EXTRA, REG_UNMAPPED, REG_TINY, REG_EMPTY, NUM_REGIONS };
/* The queues this process drives: both ends of both rings, and one bound to wherever the peer
 * says a ring lies. */
enum { Q_CLIENT_S2M, Q_SERVER_S2M, Q_CLIENT_M2S, Q_SERVER_M2S, Q_PROBE, NUM_QUEUES };

/* ---- failing loudly ---- */

static char g_op[200]; /* the operation under way, printed with a failure */

static void fail_at(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz_burst: invariant violated (%s:%d): %s\n  during: %s\n", file, line, what, g_op);
    abort();
}
#define fail(line, what) fail_at(__FILE__, (line), (what))

#define CHECK(cond)                \
    do {                           \
        if (!(cond))               \
            fail(__LINE__, #cond); \
    } while (0)

/* ---- the input, read a field at a time; past its end every field reads 0 ---- */

typedef struct {
    const uint8_t *p;
    size_t n;
} input_t;

static uint8_t in_u8(input_t *in)
{
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

static uint16_t in_u16(input_t *in)
{
    uint16_t lo = in_u8(in);
    return (uint16_t)(lo | in_u8(in) << 8);
}

static uint32_t in_u32(input_t *in)
{
    uint32_t lo = in_u16(in);
    return lo | (uint32_t)in_u16(in) << 16;
}

/* ---- the world: regions, rings, queues, and what we last saw of them ---- */

typedef struct {
    memif_ct_region_t *regions; /* the table the queues validate against (its own allocation) */
    uint8_t *snap[NUM_REGIONS];    /* region bytes before the call under test */
    uint8_t *allowed[NUM_REGIONS]; /* 1 where the call under test may write */
    memif_ct_layout_t layout;
    uint64_t ring_off[2];   /* in REG_MAIN, by ring type */
    uint64_t buf_off[2];    /* client buffers of each ring, in buf_region */
    uint16_t buf_region;
    uint32_t bsize;
    uint16_t ring_size;
    memif_ct_queue_t *q[NUM_QUEUES];
    memif_ct_queue_t shadow[NUM_QUEUES]; /* each queue as our last call left it */
    memif_ct_stats_t stats[NUM_QUEUES];  /* counters as last seen */
    int live[NUM_QUEUES];
    uint32_t seq; /* payload generator */
    int eventfd;  /* what the transmitters signal: the shared eventfd, or -1 */
} world_t;

static const char *const QUEUE_NAME[NUM_QUEUES] = {"client S2M", "server S2M", "client M2S", "server M2S",
                                                    "probe"};

static memif_ct_ring_t *ring_of(const world_t *w, int type)
{
    return (memif_ct_ring_t *)(void *)(w->regions[REG_MAIN].base + w->ring_off[type]);
}

static uint64_t desc_off(const world_t *w, int type, uint16_t slot)
{
    uint16_t s = slot & (w->ring_size - 1);
    return w->ring_off[type] + offsetof(memif_ct_ring_t, desc) + (uint64_t)s * MEMIF_CT_DESC_SIZE;
}

/* A descriptor as it was before the call under test. */
static memif_ct_desc_t desc_before(const world_t *w, int type, uint16_t slot)
{
    memif_ct_desc_t d;
    memcpy(&d, w->snap[REG_MAIN] + desc_off(w, type, slot), sizeof(d));
    return d;
}

static memif_ct_desc_t desc_now(const world_t *w, int type, uint16_t slot)
{
    memif_ct_desc_t d;
    memcpy(&d, w->regions[REG_MAIN].base + desc_off(w, type, slot), sizeof(d));
    return d;
}

static uint16_t u16_before(const world_t *w, uint64_t off)
{
    uint16_t v;
    memcpy(&v, w->snap[REG_MAIN] + off, sizeof(v));
    return v;
}

static uint64_t head_off(const world_t *w, int type) { return w->ring_off[type] + offsetof(memif_ct_ring_t, head); }

static uint64_t tail_off(const world_t *w, int type) { return w->ring_off[type] + offsetof(memif_ct_ring_t, tail); }

/* The protocol's rule (section 5), written independently of the library's. */
static int desc_valid(const world_t *w, const memif_ct_desc_t *d)
{
    if (d->region >= NUM_REGIONS || d->length == 0)
        return 0;
    const memif_ct_region_t *r = &w->regions[d->region];
    return r->base != NULL && (uint64_t)d->offset + d->length <= r->size;
}

static const uint8_t *buffer_of(const world_t *w, const memif_ct_desc_t *d)
{
    return w->regions[d->region].base + d->offset;
}

/* The same buffer as it was before the call (only for a descriptor desc_valid() accepts). */
static const uint8_t *buffer_before(const world_t *w, const memif_ct_desc_t *d)
{
    return w->snap[d->region] + d->offset;
}

/* The client's own posting for slot s of ring type t (what ring_init and refill write). */
static int desc_is_posting(const world_t *w, int type, uint16_t slot, const memif_ct_desc_t *d)
{
    uint16_t s = slot & (w->ring_size - 1);
    return d->flags == 0 && d->region == w->buf_region && d->length == w->bsize &&
           d->offset == w->buf_off[type] + (uint64_t)s * w->bsize;
}

/* ---- snapshots: what may a call change ---- */

static void snapshot(world_t *w)
{
    for (int r = 0; r < NUM_REGIONS; r++) {
        if (w->snap[r]) {
            memcpy(w->snap[r], w->regions[r].base, w->regions[r].size);
            memset(w->allowed[r], 0, w->regions[r].size);
        }
    }
}

static void allow(world_t *w, int region, uint64_t off, uint64_t len)
{
    if (!w->snap[region] || off >= w->regions[region].size)
        return;
    if (len > w->regions[region].size - off)
        len = w->regions[region].size - off;
    memset(w->allowed[region] + off, 1, len);
}

static void allow_everything(world_t *w)
{
    for (int r = 0; r < NUM_REGIONS; r++)
        allow(w, r, 0, w->regions[r].size);
}

static void check_only_allowed_changed(const world_t *w)
{
    for (int r = 0; r < NUM_REGIONS; r++) {
        const uint8_t *now = w->regions[r].base;
        uint64_t size = w->regions[r].size;
        if (!w->snap[r] || memcmp(now, w->snap[r], size) == 0)
            continue;
        for (uint64_t i = 0; i < size; i++) {
            if (now[i] != w->snap[r][i] && !w->allowed[r][i]) {
                snprintf(g_op + strlen(g_op), sizeof(g_op) - strlen(g_op), " [region %d byte %llu]", r,
                         (unsigned long long)i);
                fail(__LINE__, "a byte of shared memory changed that this call may not write");
            }
        }
    }
}

static int memory_unchanged(const world_t *w)
{
    for (int r = 0; r < NUM_REGIONS; r++)
        if (w->snap[r] && memcmp(w->regions[r].base, w->snap[r], w->regions[r].size) != 0)
            return 0;
    return 1;
}

/* ---- counters ---- */

static void check_counters(world_t *w, int qi, uint64_t packets, uint64_t bytes)
{
    memif_ct_stats_t now, *was = &w->stats[qi];
    memif_ct_queue_stats(w->q[qi], &now);
    CHECK(now.packets - was->packets == packets);
    CHECK(now.bytes - was->bytes == bytes);
    CHECK(now.chains >= was->chains && now.chains - was->chains <= packets);
    CHECK(now.bad_desc >= was->bad_desc);
    CHECK(now.bad_ring >= was->bad_ring);
    CHECK(now.drops >= was->drops);
    CHECK(now.no_space >= was->no_space);
}

static uint64_t anomalies(const memif_ct_stats_t *s) { return s->bad_desc + s->bad_ring + s->drops; }

/* Start of a call on queue qi: nothing but our own calls may change a process-local queue. */
static void begin_call(world_t *w, int qi)
{
    CHECK(memcmp(w->q[qi], &w->shadow[qi], sizeof(memif_ct_queue_t)) == 0);
    snapshot(w);
}

static void end_call(world_t *w, int qi)
{
    memcpy(&w->shadow[qi], w->q[qi], sizeof(memif_ct_queue_t));
    memif_ct_queue_stats(w->q[qi], &w->stats[qi]);
    check_only_allowed_changed(w);
}

/* ---- packets our side sends ---- */

typedef struct {
    uint8_t *data;
    size_t data_size;
    uint32_t lengths[MAX_BURST];
    uint32_t n;
    int bad_args; /* a zero length or lengths summing past data_size */
} burst_t;

static void make_burst(world_t *w, input_t *in, burst_t *b)
{
    uint8_t shape = in_u8(in);
    b->n = shape % MAX_BURST;
    /* Up to one buffer more than the ring holds, so chains longer than the ring are tried. */
    uint32_t max_len = (uint32_t)w->bsize * (w->ring_size + 1u);
    size_t total = 0;
    b->bad_args = 0;
    for (uint32_t i = 0; i < b->n; i++) {
        uint16_t v = in_u16(in);
        b->lengths[i] = (v & 0x8000) ? 1u + (v & 0x7fff) % max_len : 1u + v % (2u * w->bsize);
        if ((shape & 0x80) && i == b->n - 1)
            b->lengths[i] = 0;
        b->bad_args |= b->lengths[i] == 0;
        total += b->lengths[i];
    }
    b->data_size = total;
    if ((shape & 0x40) && total) {
        b->data_size = total - 1;
        b->bad_args = 1;
    }
    b->data = malloc(b->data_size ? b->data_size : 1);
    CHECK(b->data != NULL);
    w->seq++;
    for (size_t i = 0; i < b->data_size; i++)
        b->data[i] = (uint8_t)(w->seq * 167u + i * 29u + (i >> 8));
}

/* ---- our side: TX ---- */

/* Client on S2M: it owns every buffer, so the whole outcome is known in advance. */
static void check_client_tx(world_t *w, const memif_ct_queue_t *before, const burst_t *b, int rc)
{
    const int t = S2M;
    memif_ct_queue_t *q = w->q[Q_CLIENT_S2M];
    uint16_t tail = u16_before(w, tail_off(w, t));
    uint16_t used = (uint16_t)(before->last_head - tail);
    if (used > w->ring_size) { /* the server's tail is impossible: nothing may be sent */
        CHECK(rc == 0);
        CHECK(memory_unchanged(w));
        return;
    }
    uint32_t free_slots = w->ring_size - used, expect = 0, slots = 0;
    for (; expect < b->n; expect++) {
        uint32_t need = (b->lengths[expect] + w->bsize - 1) / w->bsize;
        if (slots + need > free_slots)
            break; /* "a packet that does not fit in the free slots is not started" */
        slots += need;
    }
    CHECK((uint32_t)rc == expect);
    CHECK(q->last_head == (uint16_t)(before->last_head + slots));
    allow(w, REG_MAIN, head_off(w, t), 2);
    if (slots) {
        uint16_t head_now;
        memcpy(&head_now, w->regions[REG_MAIN].base + head_off(w, t), 2);
        CHECK(head_now == q->last_head);
    }
    uint16_t slot = before->last_head;
    size_t pos = 0;
    for (uint32_t p = 0; p < expect; p++) {
        uint32_t left = b->lengths[p];
        while (left) {
            uint32_t n = left < w->bsize ? left : w->bsize;
            memif_ct_desc_t d = desc_now(w, t, slot);
            left -= n;
            CHECK(d.region == w->buf_region);
            CHECK(d.offset == w->buf_off[t] + (uint64_t)(slot & (w->ring_size - 1)) * w->bsize);
            CHECK(d.length == n);
            CHECK(d.flags == (left ? NEXT : 0));
            CHECK(memcmp(buffer_of(w, &d), b->data + pos, n) == 0);
            allow(w, REG_MAIN, desc_off(w, t, slot), offsetof(memif_ct_desc_t, metadata));
            allow(w, w->buf_region, d.offset, n);
            pos += n;
            slot++;
        }
    }
}

static int ranges_overlap(uint16_t ra, uint64_t a, uint64_t alen, uint16_t rb, uint64_t b, uint64_t blen)
{
    return ra == rb && a < b + blen && b < a + alen;
}

/* Server on M2S: fills buffers the client posted, each validated; a bad one is handed back
 * empty. Checked from the slots it published: every slot carrying data was valid before the
 * call, only its length and flags changed, and the slots read back as the packets sent. */
static void check_server_tx(world_t *w, const memif_ct_queue_t *before, const burst_t *b, int rc)
{
    const int t = M2S;
    memif_ct_queue_t *q = w->q[Q_SERVER_M2S];
    uint16_t head = u16_before(w, head_off(w, t));
    uint16_t avail = (uint16_t)(head - before->last_tail);
    if (avail > w->ring_size) { /* the client's head is impossible */
        CHECK(rc == 0);
        CHECK(memory_unchanged(w));
        return;
    }
    /* Every slot posted and valid, and all of them together smaller than the first packet: it
     * can never be sent, and saying so is what keeps a caller from retrying forever. */
    int never = b->n > 0 && avail == w->ring_size;
    uint64_t capacity = 0;
    for (uint16_t i = 0; never && i < avail; i++) {
        memif_ct_desc_t d = desc_before(w, t, (uint16_t)(before->last_tail + i));
        never = desc_valid(w, &d);
        capacity += d.length;
    }
    never = never && capacity < b->lengths[0];
    CHECK((rc == MEMIF_CT_ERR_TOO_BIG) == never);
    if (never) {
        CHECK(memory_unchanged(w));
        CHECK(memcmp(q, before, sizeof(*before)) == 0);
        return;
    }
    CHECK(rc >= 0 && (uint32_t)rc <= b->n);
    uint16_t published = (uint16_t)(q->last_tail - before->last_tail);
    CHECK(published <= avail);
    allow(w, REG_MAIN, tail_off(w, t), 2);
    if (published) {
        uint16_t tail_now;
        memcpy(&tail_now, w->regions[REG_MAIN].base + tail_off(w, t), 2);
        CHECK(tail_now == q->last_tail);
    }
    /* A posted buffer over this ring's own descriptors lets our writes rewrite descriptors the
     * fill re-reads, so data may then land in any valid buffer: memory safety is all that is
     * left to check (ASan's). Buffers over each other only make the read-back ambiguous. */
    int over_ring = 0, overlap = 0;
    for (uint16_t i = 0; i < published; i++) {
        memif_ct_desc_t a = desc_before(w, t, (uint16_t)(before->last_tail + i));
        if (!desc_valid(w, &a))
            continue;
        over_ring |= ranges_overlap(a.region, a.offset, a.length, REG_MAIN, w->ring_off[t], w->layout.ring_bytes);
        for (uint16_t j = 0; j < i; j++) {
            memif_ct_desc_t o = desc_before(w, t, (uint16_t)(before->last_tail + j));
            overlap |= desc_valid(w, &o) && ranges_overlap(a.region, a.offset, a.length, o.region, o.offset, o.length);
        }
        allow(w, a.region, a.offset, a.length);
    }
    if (over_ring) {
        allow_everything(w);
        return;
    }
    uint32_t packets = 0, in_chain = 0;
    size_t pos = 0, chain_len = 0;
    for (uint16_t i = 0; i < published; i++) {
        uint16_t slot = (uint16_t)(before->last_tail + i);
        allow(w, REG_MAIN, desc_off(w, t, slot) + offsetof(memif_ct_desc_t, flags), 2);
        allow(w, REG_MAIN, desc_off(w, t, slot) + offsetof(memif_ct_desc_t, length), 4);
        memif_ct_desc_t was = desc_before(w, t, slot), d = desc_now(w, t, slot);
        CHECK(d.region == was.region && d.offset == was.offset && d.metadata == was.metadata);
        CHECK((d.flags & ~NEXT) == 0);
        if (d.length == 0) { /* handed back: never inside a chain */
            CHECK(d.flags == 0);
            CHECK(!in_chain);
            continue;
        }
        CHECK(desc_valid(w, &was));
        CHECK(d.length <= was.length);
        CHECK(packets < (uint32_t)rc);
        CHECK(chain_len + d.length <= b->lengths[packets]);
        CHECK(overlap || memcmp(buffer_of(w, &d), b->data + pos + chain_len, d.length) == 0);
        chain_len += d.length;
        in_chain = d.flags & NEXT;
        if (!in_chain) {
            CHECK(chain_len == b->lengths[packets]);
            pos += chain_len;
            chain_len = 0;
            packets++;
        }
    }
    CHECK(!in_chain); /* no partial chain is ever published */
    CHECK(packets == (uint32_t)rc);
}

static void op_tx(world_t *w, int qi, input_t *in)
{
    burst_t b;
    make_burst(w, in, &b);
    memif_ct_queue_t *q = w->q[qi];
    snprintf(g_op, sizeof(g_op), "tx_burst on %s: %u packets, data_size %zu", QUEUE_NAME[qi], b.n, b.data_size);
    begin_call(w, qi);
    memif_ct_queue_t before;
    memcpy(&before, q, sizeof(before)); /* padding too: compared with memcmp */
    int rc = memif_ct_tx_burst(q, b.data, b.data_size, b.lengths, b.n);
    int client_too_long = 0; /* a client chain longer than its ring could never be published */
    for (uint32_t i = 0; i < b.n && q->role == MEMIF_CT_ROLE_CLIENT; i++)
        client_too_long |= ((uint64_t)b.lengths[i] + q->buffer_size - 1) / q->buffer_size > q->ring_size;
    if (b.bad_args || client_too_long) { /* a wrong call is reported before a packet too big */
        CHECK(rc == (b.bad_args ? MEMIF_CT_ERR_ARG : MEMIF_CT_ERR_TOO_BIG));
        CHECK(memory_unchanged(w));
        CHECK(memcmp(q, &before, sizeof(before)) == 0);
    } else if (qi == Q_CLIENT_S2M) {
        CHECK(rc >= 0 && (uint32_t)rc <= b.n);
        check_client_tx(w, &before, &b, rc);
    } else if (qi == Q_SERVER_M2S) {
        check_server_tx(w, &before, &b, rc);
    } else {
        CHECK((rc >= 0 && (uint32_t)rc <= b.n) || rc == MEMIF_CT_ERR_TOO_BIG);
    }
    uint64_t bytes = 0;
    for (int i = 0; i < rc; i++)
        bytes += b.lengths[i];
    check_counters(w, qi, rc > 0 ? (uint64_t)rc : 0, bytes);
    if (qi == Q_PROBE && rc >= 0)
        allow_everything(w); /* a ring wherever the peer put it: memory safety only */
    end_call(w, qi);
    free(b.data);
}

/* ---- our side: RX ---- */

/* One rx_burst_ex call: its arguments and what it returned. */
typedef struct {
    uint8_t *out;
    size_t out_size;
    uint32_t *lengths;
    uint32_t max_pkts;
    uint32_t flags;
    uint32_t n; /* packets delivered */
    int kept;   /* MEMIF_CT_ERR_TOO_BIG: a packet left in the ring, its length in lengths[0] */
} rx_call_t;

/* A chain of descriptors as it was before the call: slots [from, limit) past start, up to and
 * including the first slot without NEXT. */
typedef struct {
    uint16_t end; /* slot after its last, relative to start */
    int complete; /* ends with a slot without NEXT before limit */
    int valid;    /* every descriptor valid */
    uint64_t total;
} chain_t;

static chain_t chain_before(const world_t *w, int t, uint16_t start, uint16_t from, uint16_t limit)
{
    chain_t c = {from, 0, 1, 0};
    while (c.end < limit && !c.complete) {
        uint16_t index = (uint16_t)(start + c.end);
        memif_ct_desc_t d = desc_before(w, t, index);
        c.end++;
        c.valid &= desc_valid(w, &d);
        if (t == M2S) /* a client takes back only the buffer it posted in that slot, no longer */
            c.valid &= d.region == w->buf_region && d.length <= w->bsize &&
                       d.offset == w->buf_off[t] + (uint64_t)(index & (w->ring_size - 1)) * w->bsize;
        c.total += d.length;
        c.complete = !(d.flags & NEXT);
    }
    return c;
}

/* Consumer on either ring: what it delivered must be exactly the whole, valid chains of the
 * slots it released, in order, each once; whatever it skipped must show in a counter. */
static void check_rx(world_t *w, int qi, const memif_ct_queue_t *before, const memif_ct_stats_t *was,
                     const rx_call_t *c)
{
    const int t = qi == Q_SERVER_S2M ? S2M : M2S;
    memif_ct_queue_t *q = w->q[qi];
    memif_ct_stats_t now;
    memif_ct_queue_stats(q, &now);
    /* What the peer published: a client's head (S2M); a server's tail, never past what the
     * client posted (M2S). */
    uint16_t peer = u16_before(w, t == S2M ? head_off(w, t) : tail_off(w, t));
    uint16_t limit = t == S2M ? w->ring_size : (uint16_t)(before->last_head - before->last_tail);
    uint16_t avail = (uint16_t)(peer - before->last_tail);
    if (t == S2M) {
        allow(w, REG_MAIN, tail_off(w, t), 2);
        if (q->last_tail != before->last_tail) {
            uint16_t tail_now;
            memcpy(&tail_now, w->regions[REG_MAIN].base + tail_off(w, t), 2);
            CHECK(tail_now == q->last_tail);
        }
        /* Released slots carry the consumed mark: length 0, nothing else changed. */
        for (uint16_t i = 0; i != (uint16_t)(q->last_tail - before->last_tail); i++) {
            uint16_t s = (uint16_t)(before->last_tail + i);
            memif_ct_desc_t d = desc_now(w, t, s), old = desc_before(w, t, s);
            if (memcmp(&d, &old, sizeof(d)) != 0) {
                CHECK(d.length == 0 && d.flags == old.flags && d.region == old.region && d.offset == old.offset);
                allow(w, REG_MAIN, desc_off(w, t, s) + offsetof(memif_ct_desc_t, length), 4);
            }
        }
    } else {
        /* The client re-posts its buffers before returning, and writes nothing else. Its head in
         * shared memory is the peer's to scribble on, and is stored again when it moves. */
        uint16_t head_now;
        memcpy(&head_now, w->regions[REG_MAIN].base + head_off(w, t), 2);
        CHECK((uint16_t)(q->last_head - q->last_tail) == w->ring_size);
        CHECK(head_now == q->last_head || q->last_head == before->last_head);
        allow(w, REG_MAIN, head_off(w, t), 2);
        for (uint16_t s = 0; s < w->ring_size; s++) {
            memif_ct_desc_t d = desc_now(w, t, s), old = desc_before(w, t, s);
            if (memcmp(&d, &old, sizeof(d)) != 0) {
                CHECK(desc_is_posting(w, t, s, &d));
                allow(w, REG_MAIN, desc_off(w, t, s), sizeof(d));
            }
        }
    }
    if (avail > limit) { /* impossible peer index: nothing delivered, and it is counted */
        CHECK(c->n == 0 && !c->kept);
        CHECK(now.bad_ring > was->bad_ring);
        return;
    }
    uint16_t consumed = (uint16_t)(q->last_tail - before->last_tail);
    CHECK(consumed <= avail);
    /* Walk the released slots chain by chain. */
    uint32_t p = 0, chains = 0;
    size_t out_pos = 0;
    for (uint16_t i = 0; i < consumed;) {
        chain_t ch = chain_before(w, t, before->last_tail, i, consumed);
        chains++;
        if (ch.valid && ch.complete && p < c->n && c->lengths[p] == ch.total) {
            size_t at = out_pos;
            int same = 1;
            for (uint16_t k = i; k < ch.end && same; k++) {
                memif_ct_desc_t d = desc_before(w, t, (uint16_t)(before->last_tail + k));
                same = memcmp(c->out + at, buffer_before(w, &d), d.length) == 0;
                at += d.length;
            }
            if (same) {
                out_pos = at;
                p++;
            }
        }
        i = ch.end;
    }
    CHECK(p == c->n); /* every packet delivered is one whole valid chain released now */
    CHECK(chains - p <= anomalies(&now) - anomalies(was)); /* no silent drop */
    if (c->kept) { /* the packet left in the ring comes next, whole, valid and too big */
        chain_t next = chain_before(w, t, before->last_tail, consumed, avail);
        CHECK(c->n == 0);
        CHECK(next.complete && next.valid && next.total == c->lengths[0] && next.total > c->out_size);
    }
    if (c->max_pkts && avail) {
        chain_t first = chain_before(w, t, before->last_tail, 0, avail);
        int whole = first.complete && first.valid;
        CHECK(!(whole && first.total <= c->out_size) || c->n >= 1); /* no stall on what fits */
        if (c->flags & MEMIF_CT_RX_KEEP_TOO_BIG)
            CHECK(!(whole && first.total > c->out_size) || (c->kept && consumed == 0));
    }
}

static void op_rx(world_t *w, int qi, input_t *in)
{
    uint8_t shape = in_u8(in);
    rx_call_t c = {0};
    c.max_pkts = shape % (MAX_BURST + 1);
    c.flags = shape & 0x80 ? MEMIF_CT_RX_KEEP_TOO_BIG : 0;
    c.out_size = in_u16(in) % (2u * w->ring_size * w->bsize + 1u);
    c.out = malloc(c.out_size ? c.out_size : 1);
    c.lengths = malloc(sizeof(uint32_t) * (c.max_pkts ? c.max_pkts : 1));
    CHECK(c.out != NULL && c.lengths != NULL);
    memif_ct_queue_t *q = w->q[qi];
    snprintf(g_op, sizeof(g_op), "rx_burst_ex on %s: max_pkts %u, out_size %zu, flags %u", QUEUE_NAME[qi], c.max_pkts,
             c.out_size, c.flags);
    begin_call(w, qi);
    memif_ct_queue_t before;
    memcpy(&before, q, sizeof(before));
    memif_ct_stats_t was = w->stats[qi];
    int rc = memif_ct_rx_burst_ex(q, c.out, c.out_size, c.lengths, c.max_pkts, c.flags);
    c.kept = rc == MEMIF_CT_ERR_TOO_BIG;
    if (c.kept)
        CHECK(c.flags && c.max_pkts && c.lengths[0] > c.out_size);
    else
        CHECK(rc >= 0 && (uint32_t)rc <= c.max_pkts);
    c.n = c.kept ? 0 : (uint32_t)rc;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < c.n; i++) {
        CHECK(c.lengths[i] > 0);
        bytes += c.lengths[i];
    }
    CHECK(bytes <= c.out_size);
    check_counters(w, qi, c.n, bytes);
    if (qi == Q_PROBE)
        allow_everything(w); /* a ring wherever the peer put it: memory safety only */
    else
        check_rx(w, qi, &before, &was, &c);
    end_call(w, qi);
    free(c.out);
    free(c.lengths);
}

static void op_refill(world_t *w)
{
    const int t = M2S, qi = Q_CLIENT_M2S;
    memif_ct_queue_t *q = w->q[qi];
    snprintf(g_op, sizeof(g_op), "refill on client M2S");
    begin_call(w, qi);
    memif_ct_queue_t before;
    memcpy(&before, q, sizeof(before));
    int rc = memif_ct_refill(q);
    CHECK(rc == w->ring_size - (uint16_t)(before.last_head - before.last_tail));
    CHECK(q->last_head == (uint16_t)(before.last_head + rc));
    CHECK(q->last_tail == before.last_tail);
    allow(w, REG_MAIN, head_off(w, t), 2);
    for (int i = 0; i < rc; i++) {
        uint16_t slot = (uint16_t)(before.last_head + i);
        memif_ct_desc_t d = desc_now(w, t, slot);
        CHECK(desc_is_posting(w, t, slot, &d));
        allow(w, REG_MAIN, desc_off(w, t, slot), sizeof(d));
    }
    check_counters(w, qi, 0, 0);
    end_call(w, qi);
}

/* Calls that do not fit a queue's role and ring type change nothing. */
static void op_misuse(world_t *w, input_t *in)
{
    static const int consumers[] = {Q_SERVER_S2M, Q_CLIENT_M2S}, producers[] = {Q_CLIENT_S2M, Q_SERVER_M2S};
    uint8_t pick = in_u8(in);
    uint8_t byte = 0;
    uint32_t length = 1;
    snprintf(g_op, sizeof(g_op), "wrong-direction call %u", pick % 6u);
    snapshot(w);
    switch (pick % 6) {
    case 0:
    case 1:
        CHECK(memif_ct_tx_burst(w->q[consumers[pick % 2]], &byte, 1, &length, 1) == MEMIF_CT_ERR_DIRECTION);
        break;
    case 2:
    case 3:
        CHECK(memif_ct_rx_burst(w->q[producers[pick % 2]], &byte, 1, &length, 1) == MEMIF_CT_ERR_DIRECTION);
        break;
    case 4:
        CHECK(memif_ct_refill(w->q[(pick >> 3) % 2 ? Q_SERVER_M2S : Q_CLIENT_S2M]) == MEMIF_CT_ERR_DIRECTION);
        break;
    default:
        CHECK(memif_ct_tx_burst(w->q[Q_CLIENT_S2M], NULL, 1, &length, 1) == MEMIF_CT_ERR_NULL);
        CHECK(memif_ct_rx_burst(w->q[Q_SERVER_S2M], NULL, 1, &length, 1) == MEMIF_CT_ERR_NULL);
        CHECK(memif_ct_rx_burst_ex(w->q[Q_CLIENT_M2S], &byte, 1, &length, 1, 2u << (pick >> 3 & 7)) ==
              MEMIF_CT_ERR_ARG);
        break;
    }
    CHECK(memory_unchanged(w));
    for (int qi = 0; qi < Q_PROBE; qi++)
        CHECK(memcmp(w->q[qi], &w->shadow[qi], sizeof(memif_ct_queue_t)) == 0);
}

/* ---- the hostile peer: shared memory is its to scribble on ---- */

static uint32_t hostile_u32(const world_t *w, input_t *in, uint16_t region, uint32_t other)
{
    uint8_t mode = in_u8(in);
    uint64_t size = region < NUM_REGIONS ? w->regions[region].size : 0;
    switch (mode % 6) {
    case 0:
        return in_u32(in);
    case 1:
        return in_u16(in);
    case 2: /* around the end of the region */
        return (uint32_t)(size - (mode >> 3));
    case 3: /* offset + length around the end of the region */
        return (uint32_t)(size - other + (int8_t)in_u8(in) % 3);
    case 4: /* a buffer over a ring's own descriptors: our writes then rewrite the ring */
        return (uint32_t)(desc_off(w, mode >> 7, in_u8(in)) - (mode >> 3 & 15));
    default:
        return UINT32_MAX - (mode >> 3);
    }
}

static void op_scribble_desc(world_t *w, input_t *in)
{
    uint8_t which = in_u8(in);
    int t = which & 1;
    uint8_t where = in_u8(in);
    uint16_t slot = where;
    if (which & 128) { /* near head or tail, where the other side is about to read */
        memif_ct_ring_t *ring = ring_of(w, t);
        slot = (uint16_t)(atomic_load(where & 1 ? &ring->tail : &ring->head) + (where >> 1) % 8 - 4);
    }
    memif_ct_desc_t *dp = &ring_of(w, t)->desc[slot & (w->ring_size - 1)];
    memif_ct_desc_t d = *dp;
    if (which & 2) {
        uint8_t f = in_u8(in);
        d.flags = f & 0x80 ? in_u16(in) : (uint16_t)(f & NEXT);
    }
    if (which & 4) {
        uint8_t r = in_u8(in);
        d.region = r < 0xf0 ? r % (NUM_REGIONS + 2) : in_u16(in);
    }
    if (which & 8)
        d.offset = hostile_u32(w, in, d.region, 0);
    if (which & 16)
        d.length = hostile_u32(w, in, d.region, d.offset);
    if (which & 32)
        d.metadata = in_u32(in);
    if (which & 64) { /* a short buffer that ends just before, at or just past its region's end */
        d.region = (uint16_t)(in_u8(in) % NUM_REGIONS);
        d.length = 1u + in_u8(in) % 128u;
        d.offset = (uint32_t)(w->regions[d.region].size - d.length + in_u8(in) % 3u - 1u);
    }
    *dp = d;
}

static void op_scribble_index(world_t *w, input_t *in)
{
    uint8_t which = in_u8(in);
    memif_ct_ring_t *ring = ring_of(w, which & 1);
    memif_ct_atomic_u16_t *index = which & 2 ? &ring->tail : &ring->head;
    memif_ct_atomic_u16_t *other = which & 2 ? &ring->head : &ring->tail;
    uint16_t v;
    if (which & 4)
        v = in_u16(in);
    else if (which & 8) { /* at the edge of the possible, give or take one: head a ring ahead of
                            * tail; tail level with head on M2S, a ring behind it on S2M */
        int d = in_u8(in) % 3 - 1;
        if (!(which & 2))
            v = (uint16_t)(atomic_load(other) + w->ring_size + d);
        else
            v = (uint16_t)(atomic_load(other) - ((which & 1) == S2M ? w->ring_size : 0) + d);
    }
    else
        v = (uint16_t)(atomic_load(index) + (int8_t)in_u8(in));
    atomic_store(index, v);
}

static void op_ring_flags(world_t *w, input_t *in)
{
    uint8_t which = in_u8(in);
    int t = which & 1;
    /* The transmitter of each ring: the client on S2M, the server on M2S. */
    memif_ct_queue_t *tx = w->q[t == S2M ? Q_CLIENT_S2M : Q_SERVER_M2S];
    memif_ct_queue_t *rx = w->q[t == S2M ? Q_SERVER_S2M : Q_CLIENT_M2S];
    if (which & 2)
        atomic_store(&ring_of(w, t)->flags, in_u16(in));
    else
        memif_ct_queue_set_polling(rx, which & 4); /* the receiver owns the flag */
    int masked = atomic_load(&ring_of(w, t)->flags) & MEMIF_CT_RING_FLAG_MASK_INT;
    CHECK(memif_ct_queue_needs_signal(tx) == !masked);
}

static void op_scribble_bytes(world_t *w, input_t *in)
{
    int r = in_u8(in) & 1 ? REG_EXTRA : REG_MAIN;
    uint64_t size = w->regions[r].size;
    uint64_t off = in_u16(in) % size;
    uint64_t len = in_u8(in);
    uint8_t value = in_u8(in);
    memset(w->regions[r].base + off, value, len < size - off ? len : size - off);
}

/* ---- binding queues ---- */

static void take_shadow(world_t *w, int qi)
{
    memcpy(&w->shadow[qi], w->q[qi], sizeof(memif_ct_queue_t));
    memif_ct_queue_stats(w->q[qi], &w->stats[qi]);
    w->live[qi] = 1;
}

/* A reconnect: the client writes a fresh ring; both ends bind to it again. Or only the server
 * binds again, adopting whatever head and tail the ring holds now. */
static void op_rebind(world_t *w, input_t *in)
{
    uint8_t which = in_u8(in);
    int t = which & 1;
    int client_qi = t == S2M ? Q_CLIENT_S2M : Q_CLIENT_M2S, server_qi = t == S2M ? Q_SERVER_S2M : Q_SERVER_M2S;
    void *ring = ring_of(w, t);
    snprintf(g_op, sizeof(g_op), "rebind ring type %d (%s)", t, which & 2 ? "server only" : "fresh ring");
    if (!(which & 2)) {
        CHECK(memif_ct_ring_init(ring, w->layout.log2_ring_size, w->buf_region, w->buf_off[t], w->bsize) == 0);
        CHECK(memif_ct_queue_init(w->q[client_qi], ring, w->layout.log2_ring_size, MEMIF_CT_ROLE_CLIENT, (uint32_t)t,
                                  w->regions, NUM_REGIONS, w->buf_region, w->buf_off[t], w->bsize) == 0);
        take_shadow(w, client_qi);
    }
    int rc = memif_ct_queue_init(w->q[server_qi], ring, w->layout.log2_ring_size, MEMIF_CT_ROLE_SERVER, (uint32_t)t,
                                 w->regions, NUM_REGIONS, 0, 0, 0);
    CHECK(rc == 0 || rc == MEMIF_CT_ERR_COOKIE); /* the peer may have scribbled on the cookie */
    CHECK(memcmp(w->q[server_qi], &w->shadow[server_qi], sizeof(memif_ct_queue_t)) == 0 || rc == 0);
    if (rc == 0)
        take_shadow(w, server_qi);
    int tx_qi = t == S2M ? Q_CLIENT_S2M : Q_SERVER_M2S;
    CHECK(memif_ct_queue_set_eventfd(w->q[tx_qi], w->eventfd) == 0);
    take_shadow(w, tx_qi);
}

/* Bind a queue to wherever the peer says a ring lies (ADD_RING offsets are the peer's). */
static void op_probe_bind(world_t *w, input_t *in)
{
    uint8_t how = in_u8(in);
    uint16_t region = (uint16_t)(in_u8(in) % NUM_REGIONS);
    uint32_t off = hostile_u32(w, in, region, 0) % (1u << 20);
    uint32_t log2 = in_u8(in) % 16;
    uint32_t role = how & 1, type = (how >> 1) & 1;
    uint16_t buf_region = (uint16_t)(in_u8(in) % (NUM_REGIONS + 1));
    uint32_t buf_off = hostile_u32(w, in, buf_region, 0);
    uint32_t bsize = in_u16(in);
    uintptr_t base = (uintptr_t)w->regions[region].base;
    void *ring = (void *)(base + off);
    snprintf(g_op, sizeof(g_op), "bind %s queue (type %u) to region %u + %u, log2 %u, buffers %u + %u size %u",
             role ? "server" : "client", type, region, off, log2, buf_region, buf_off, bsize);
    /* A peer that means it writes a cookie there first. */
    if ((how & 4) && base && (uint64_t)off + 4 <= w->regions[region].size) {
        uint32_t cookie = MEMIF_CT_COOKIE;
        memcpy(w->regions[region].base + off, &cookie, 4);
    }
    snapshot(w);
    int rc = memif_ct_queue_init(w->q[Q_PROBE], ring, log2, role, type, w->regions, NUM_REGIONS, buf_region, buf_off,
                                 bsize);
    CHECK(memory_unchanged(w));
    if (rc != 0) {
        CHECK(rc < 0);
        CHECK(memcmp(w->q[Q_PROBE], &w->shadow[Q_PROBE], sizeof(memif_ct_queue_t)) == 0);
        return;
    }
    uint64_t ring_bytes = memif_ct_ring_bytes(log2);
    CHECK(ring_bytes != 0);
    CHECK(base && off % 4 == 0 && (uint64_t)off + ring_bytes <= w->regions[region].size);
    CHECK(((memif_ct_ring_t *)ring)->cookie == MEMIF_CT_COOKIE);
    if (role == MEMIF_CT_ROLE_CLIENT) {
        CHECK(buf_region < NUM_REGIONS && w->regions[buf_region].base);
        CHECK(bsize >= MEMIF_CT_MIN_BUFFER_SIZE);
        CHECK((uint64_t)buf_off + ((uint64_t)bsize << log2) <= w->regions[buf_region].size);
    }
    take_shadow(w, Q_PROBE);
}

/* ---- one session ---- */

static void check_occupancy(const world_t *w)
{
    for (int qi = 0; qi < NUM_QUEUES; qi++) {
        if (!w->live[qi])
            continue;
        CHECK(memif_ct_queue_pending(w->q[qi]) <= w->q[qi]->ring_size);
        CHECK(memif_ct_queue_free(w->q[qi]) <= w->q[qi]->ring_size);
    }
}

static int g_eventfd = -1;

static void setup(world_t *w, input_t *in)
{
    memset(w, 0, sizeof(*w));
    uint32_t log2 = 1 + in_u8(in) % 4;
    w->bsize = MEMIF_CT_MIN_BUFFER_SIZE + in_u8(in) % 193;
    uint8_t mode = in_u8(in);
    CHECK(memif_ct_layout_init(&w->layout, 1, 1, log2, w->bsize) == 0);
    w->ring_size = (uint16_t)(1u << log2);
    w->regions = calloc(NUM_REGIONS, sizeof(memif_ct_region_t));
    CHECK(w->regions != NULL);
    uint64_t sizes[NUM_REGIONS] = {
        [REG_MAIN] = w->layout.total_size,
        [REG_EXTRA] = 2ull * w->ring_size * w->bsize + (mode >> 4),
        [REG_TINY] = 1 + in_u8(in) % 64,
    };
    for (int r = 0; r < NUM_REGIONS; r++) {
        if (r == REG_UNMAPPED)
            continue;
        w->regions[r].base = malloc(sizes[r] ? sizes[r] : 1);
        w->regions[r].size = sizes[r];
        CHECK(w->regions[r].base != NULL);
        for (uint64_t i = 0; i < sizes[r]; i++)
            w->regions[r].base[i] = (uint8_t)(0xA5 ^ (r << 5) ^ i ^ (i >> 7));
        if (sizes[r]) {
            w->snap[r] = malloc(sizes[r]);
            w->allowed[r] = malloc(sizes[r]);
            CHECK(w->snap[r] != NULL && w->allowed[r] != NULL);
        }
    }
    w->regions[REG_UNMAPPED].size = in_u32(in); /* claims bytes, maps none */
    w->buf_region = mode & 1 ? REG_EXTRA : REG_MAIN;
    for (int t = S2M; t <= M2S; t++) {
        w->ring_off[t] = memif_ct_layout_ring_offset(&w->layout, (uint32_t)t, 0);
        w->buf_off[t] = w->buf_region == REG_MAIN ? memif_ct_layout_buffer_offset(&w->layout, (uint32_t)t, 0)
                                                  : (uint64_t)t * w->ring_size * w->bsize;
        CHECK(memif_ct_ring_init(ring_of(w, t), log2, w->buf_region, w->buf_off[t], w->bsize) == 0);
    }
    for (int qi = 0; qi < NUM_QUEUES; qi++) {
        w->q[qi] = calloc(1, sizeof(memif_ct_queue_t));
        CHECK(w->q[qi] != NULL);
    }
    for (int qi = Q_CLIENT_S2M; qi <= Q_SERVER_M2S; qi++) {
        int t = qi >= Q_CLIENT_M2S ? M2S : S2M;
        uint32_t role = qi % 2 ? MEMIF_CT_ROLE_SERVER : MEMIF_CT_ROLE_CLIENT;
        CHECK(memif_ct_queue_init(w->q[qi], ring_of(w, t), log2, role, (uint32_t)t, w->regions, NUM_REGIONS,
                                  w->buf_region, w->buf_off[t], w->bsize) == 0);
    }
    if (g_eventfd < 0)
        g_eventfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->eventfd = mode & 2 ? g_eventfd : -1; /* signalled after a burst when the receiver asks */
    CHECK(memif_ct_queue_set_eventfd(w->q[Q_CLIENT_S2M], w->eventfd) == 0);
    CHECK(memif_ct_queue_set_eventfd(w->q[Q_SERVER_M2S], w->eventfd) == 0);
    if (!(mode & 4))
        CHECK(memif_ct_refill(w->q[Q_CLIENT_M2S]) == w->ring_size); /* the client posts at connect */
    for (int qi = Q_CLIENT_S2M; qi <= Q_SERVER_M2S; qi++)
        take_shadow(w, qi);
    memcpy(&w->shadow[Q_PROBE], w->q[Q_PROBE], sizeof(memif_ct_queue_t));
}

static void teardown(world_t *w)
{
    for (int qi = 0; qi < NUM_QUEUES; qi++)
        free(w->q[qi]);
    for (int r = 0; r < NUM_REGIONS; r++) {
        free(w->regions[r].base);
        free(w->snap[r]);
        free(w->allowed[r]);
    }
    free(w->regions);
    if (g_eventfd >= 0)
        (void)memif_ct_eventfd_clear(g_eventfd);
}

#include "fuzz_zc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input_t in = {data, size};
    if (size && data[0] >= ZC_SELECT) { /* the zero-copy data path (fuzz_zc.h) */
        in_u8(&in);
        zc_session(&in);
        return 0;
    }
    world_t w;
    snprintf(g_op, sizeof(g_op), "setup");
    setup(&w, &in);
    for (int ops = 0; in.n && ops < MAX_OPS; ops++) {
        uint8_t op = in_u8(&in);
        switch (op % 16) {
        case 0:
        case 1:
            op_tx(&w, Q_CLIENT_S2M, &in);
            break;
        case 2:
        case 3:
            op_rx(&w, Q_SERVER_S2M, &in);
            break;
        case 4:
        case 5:
            op_tx(&w, Q_SERVER_M2S, &in);
            break;
        case 6:
        case 7:
            op_rx(&w, Q_CLIENT_M2S, &in);
            break;
        case 8:
            op_refill(&w);
            break;
        case 9:
        case 10:
            op_scribble_desc(&w, &in);
            break;
        case 11:
            op_scribble_index(&w, &in);
            break;
        case 12:
            op_ring_flags(&w, &in);
            break;
        case 13:
            op % 32 < 16 ? op_scribble_bytes(&w, &in) : op_misuse(&w, &in);
            break;
        case 14:
            op_rebind(&w, &in);
            break;
        default:
            if (op % 32 < 16 || !w.live[Q_PROBE])
                op_probe_bind(&w, &in);
            else if (w.q[Q_PROBE]->tx)
                op_tx(&w, Q_PROBE, &in);
            else
                op_rx(&w, Q_PROBE, &in);
            break;
        }
        check_occupancy(&w);
    }
    teardown(&w);
    return 0;
}
