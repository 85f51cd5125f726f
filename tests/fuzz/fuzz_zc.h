/* fuzz_zc.h - the zero-copy half of fuzz_burst (issue 9's data path against a hostile peer).
 * Included by fuzz_burst.c, which runs it for an input whose first byte is >= ZC_SELECT.
 *
 * The memory is a zero-copy client's (memif-protocol.md section 5, "Zero-copy"): region 0 holds
 * only the two rings; region 1 is an arena with the client's TX pool (one or two segments, maybe
 * with slack after the last buffer) and, after it, the M2S buffers: a second pool, or slot-math
 * buffers (a copy-mode client, for rx_peek without a pool). Region 2 claims bytes and maps none,
 * region 3 is tiny. Our side drives the four ends: the pool client's S2M TX (tx_buffers,
 * tx_burst, reclaim), the server's S2M RX (rx_burst, rx_peek/rx_release with scratch of any size,
 * none included), the client's M2S RX (the same, refill), the server's M2S TX (tx_reserve,
 * tx_commit, tx_unreserve, tx_burst); the application allocs/frees pool buffers (double frees
 * and foreign indexes included); drop_pool comes at any point. The peer rewrites descriptors,
 * head and tail (also between reserve and commit), and buffer bytes.
 *
 * Invariants, from a model kept by the harness and never from the library's own fields where a
 * public view exists:
 *   - pool accounting: FREE + APP + RING == count; each buffer's state is the model's: APP iff the
 *     application holds it, RING iff exactly one slot of the caller's slot table names it (never
 *     two), FREE otherwise, and FREE-state buffers number exactly the free count (a double free
 *     pushes one twice); a slot's buffer is given back exactly when the server's tail, read once
 *     per call, passes it; an M2S slot keeps its one buffer until drop_pool;
 *   - TX: the count sent is the model's (free slots from one tail read, pool buffers left); each
 *     slot published names its buffer with the right length and flags, the bytes are the data;
 *   - RX (burst or peek): each packet is exactly the bytes of one whole chain of descriptors valid
 *     before the call (a client's: the buffer it posted in that slot), in order; a peeked packet in
 *     place points at its first segment, one in scratch lies inside the scratch; every chain given
 *     up shows in a counter;
 *   - reserve hands out only wholly mapped buffers; with no peer interference between reserve and
 *     commit, commit publishes exactly the reserved buffers in order with the committed lengths
 *     and bytes; nothing reserved means no slot reserved (queue_free is every posted slot);
 *   - no byte of shared memory changes that the call may not write; counters never shrink and
 *     packets/bytes match what was returned; ASan/UBSan for everything else. */

#define ZC_SELECT 0xC0
#define ZC_MAX_N 16
#define ZC_NONE UINT32_MAX

enum { ZR_RINGS, ZR_ARENA, ZR_UNMAPPED, ZR_TINY, ZR_NUM };
enum { ZQ_CTX, ZQ_SRX, ZQ_CRX, ZQ_STX, ZQ_NUM };
enum { ZP_TX, ZP_RX };

typedef struct {
    memif_ct_region_t *regions;
    uint8_t *snap[ZR_NUM], *allowed[ZR_NUM];
    uint16_t N;
    uint32_t log2, bsize, pbsize;
    uint64_t ring_off[2];
    uint64_t crx_off; /* copy-mode M2S client: slot-math buffers in the arena */
    uint64_t rx_start; /* arena offset of the M2S buffers (after the TX pool) */
    memif_ct_pool_t *pool[2];
    memif_ct_segment_t seg[2][2];
    uint32_t nseg[2], count[2];
    uint32_t *tab[2];
    memif_ct_queue_t *q[ZQ_NUM];
    memif_ct_stats_t stats[ZQ_NUM];
    int dropped[2];
    /* model of the TX pool */
    uint8_t *app;              /* count[ZP_TX]: 1 while the application holds it */
    uint32_t m_slot[ZC_MAX_N]; /* buffer each S2M slot holds */
    uint16_t m_head, m_reclaimed;
    uint32_t rxbuf[ZC_MAX_N]; /* M2S pool: each slot's buffer for life */
    /* model of the server's reservations */
    memif_ct_buf_t res[ZC_MAX_N];
    uint32_t res_seed[ZC_MAX_N];
    uint32_t nres;
    int res_clean; /* no peer write since the first reservation, buffers apart in the arena */
    uint32_t seq;
} zw_t;

static const char *const ZQ_NAME[ZQ_NUM] = {"pool client S2M", "server S2M", "client M2S", "server M2S"};

static memif_ct_ring_t *zw_ring(const zw_t *w, int t)
{
    return (memif_ct_ring_t *)(void *)(w->regions[ZR_RINGS].base + w->ring_off[t]);
}

static uint64_t zw_desc_off(const zw_t *w, int t, uint16_t index)
{
    return w->ring_off[t] + offsetof(memif_ct_ring_t, desc) + (uint64_t)(index & (w->N - 1)) * MEMIF_CT_DESC_SIZE;
}

static memif_ct_desc_t zw_desc(const zw_t *w, int t, uint16_t index, int before)
{
    memif_ct_desc_t d;
    memcpy(&d, (before ? w->snap[ZR_RINGS] : w->regions[ZR_RINGS].base) + zw_desc_off(w, t, index), sizeof(d));
    return d;
}

static uint16_t zw_index(const zw_t *w, int t, size_t field, int before)
{
    uint16_t v;
    memcpy(&v, (before ? w->snap[ZR_RINGS] : w->regions[ZR_RINGS].base) + w->ring_off[t] + field, 2);
    return v;
}
#define HEAD offsetof(memif_ct_ring_t, head)
#define TAIL offsetof(memif_ct_ring_t, tail)

static int zw_valid(const zw_t *w, const memif_ct_desc_t *d)
{
    if (d->region >= ZR_NUM || d->length == 0)
        return 0;
    const memif_ct_region_t *r = &w->regions[d->region];
    return r->base != NULL && (uint64_t)d->offset + d->length <= r->size;
}

/* Pool p's buffer b: region offset and address, from the segments as the harness laid them out. */
static uint64_t zw_buf_off(const zw_t *w, int p, uint32_t b)
{
    for (uint32_t s = 0; s < w->nseg[p]; s++) {
        uint32_t in_seg = (uint32_t)(w->seg[p][s].size / w->pbsize);
        if (b < in_seg)
            return w->seg[p][s].offset + (uint64_t)b * w->pbsize;
        b -= in_seg;
    }
    fail(__LINE__, "no such pool buffer");
    return 0;
}

/* The buffer a client posts in M2S slot s. */
static uint64_t zw_posting_off(const zw_t *w, uint16_t s)
{
    s &= (uint16_t)(w->N - 1);
    return w->pool[ZP_RX] ? zw_buf_off(w, ZP_RX, w->rxbuf[s]) : w->crx_off + (uint64_t)s * w->bsize;
}

/* ---- snapshots ---- */

static void zw_allow(zw_t *w, int r, uint64_t off, uint64_t len)
{
    if (r >= ZR_NUM || !w->snap[r] || off >= w->regions[r].size)
        return;
    if (len > w->regions[r].size - off)
        len = w->regions[r].size - off;
    memset(w->allowed[r] + off, 1, len);
}

static void zw_begin(zw_t *w, int qi)
{
    memif_ct_stats_t s;
    memif_ct_queue_stats(w->q[qi], &s);
    CHECK(memcmp(&s, &w->stats[qi], sizeof(s)) == 0);
    for (int r = 0; r < ZR_NUM; r++) {
        if (w->snap[r]) {
            memcpy(w->snap[r], w->regions[r].base, w->regions[r].size);
            memset(w->allowed[r], 0, w->regions[r].size);
        }
    }
}

static void zw_pool_check(const zw_t *w);

static void zw_end(zw_t *w, int qi, uint64_t packets, uint64_t bytes)
{
    memif_ct_stats_t now, *was = &w->stats[qi];
    memif_ct_queue_stats(w->q[qi], &now);
    CHECK(now.packets - was->packets == packets);
    CHECK(now.bytes - was->bytes == bytes);
    CHECK(now.chains >= was->chains && now.bad_desc >= was->bad_desc && now.bad_ring >= was->bad_ring);
    CHECK(now.drops >= was->drops && now.no_space >= was->no_space && now.bad_chain >= was->bad_chain);
    *was = now;
    for (int r = 0; r < ZR_NUM; r++) {
        if (!w->snap[r])
            continue;
        for (uint64_t i = 0; i < w->regions[r].size; i++) {
            if (w->regions[r].base[i] != w->snap[r][i] && !w->allowed[r][i]) {
                snprintf(g_op + strlen(g_op), sizeof(g_op) - strlen(g_op), " [region %d byte %llu]", r,
                         (unsigned long long)i);
                fail(__LINE__, "a byte of shared memory changed that this call may not write");
            }
        }
    }
    zw_pool_check(w);
    /* Nothing reserved: no slot reserved either, every posted slot is free to a producer. */
    memif_ct_queue_t *stx = w->q[ZQ_STX];
    uint16_t posted = (uint16_t)(atomic_load(&zw_ring(w, MEMIF_CT_RING_TYPE_M2S)->head) - stx->last_tail);
    if (memif_ct_tx_reserved(stx) == 0 && posted <= w->N)
        CHECK(memif_ct_queue_free(stx) == posted);
    CHECK(memif_ct_tx_reserved(stx) == w->nres || !w->res_clean);
}

/* ---- pool accounting against the model ---- */

static void zw_pool_check(const zw_t *w)
{
    for (int p = ZP_TX; p <= ZP_RX; p++) {
        if (!w->pool[p])
            continue;
        uint32_t f, a, r, n_free = 0, n_app = 0, n_ring = 0;
        memif_ct_pool_counts(w->pool[p], &f, &a, &r);
        CHECK(f + a + r == w->count[p] && memif_ct_pool_count(w->pool[p]) == w->count[p]);
        for (uint32_t b = 0; b < w->count[p]; b++) {
            memif_ct_buf_t info;
            CHECK(memif_ct_pool_buffer(w->pool[p], b, &info) == MEMIF_CT_OK);
            CHECK(info.region == ZR_ARENA && info.offset == zw_buf_off(w, p, b));
            CHECK(info.addr == w->regions[ZR_ARENA].base + info.offset && info.capacity == w->pbsize);
            uint32_t slots = 0; /* slots of the caller's table naming b: never two */
            for (uint16_t s = 0; s < w->N; s++)
                slots += w->tab[p][s] == b;
            CHECK(slots <= 1);
            int want_app = p == ZP_TX && w->app[b];
            int want_ring = 0;
            for (uint16_t s = 0; s < w->N && !w->dropped[p]; s++)
                want_ring |= (p == ZP_TX ? w->m_slot[s] : w->rxbuf[s]) == b;
            CHECK(info.state == (want_app ? MEMIF_CT_BUF_APP : want_ring ? MEMIF_CT_BUF_RING : MEMIF_CT_BUF_FREE));
            CHECK(slots == (uint32_t)want_ring);
            n_free += info.state == MEMIF_CT_BUF_FREE;
            n_app += info.state == MEMIF_CT_BUF_APP;
            n_ring += info.state == MEMIF_CT_BUF_RING;
        }
        CHECK(n_free == f && n_app == a && n_ring == r); /* a buffer freed twice sits on the stack twice */
        for (uint16_t s = 0; s < w->N; s++)
            CHECK(w->tab[p][s] == (w->dropped[p] ? ZC_NONE : p == ZP_TX ? w->m_slot[s] : w->rxbuf[s]));
    }
}

/* The model's reclaim at the start of a pool TX call: the tail as the call found it. Returns the
 * free slots, or -1 for an impossible tail (nothing reclaimed). */
static int32_t zw_model_reclaim(zw_t *w)
{
    uint16_t tail = zw_index(w, MEMIF_CT_RING_TYPE_S2M, TAIL, 1);
    uint16_t done = (uint16_t)(tail - w->m_reclaimed);
    if (done > (uint16_t)(w->m_head - w->m_reclaimed))
        return -1;
    for (uint16_t i = 0; i < done; i++)
        w->m_slot[(uint16_t)(w->m_reclaimed + i) & (w->N - 1)] = ZC_NONE;
    w->m_reclaimed = tail;
    return w->N - (uint16_t)(w->m_head - tail);
}

/* ---- the application: pool buffers ---- */

static uint32_t zw_app_list(const zw_t *w, uint32_t *idx)
{
    uint32_t n = 0;
    for (uint32_t b = 0; b < w->count[ZP_TX]; b++)
        if (w->app[b])
            idx[n++] = b;
    return n;
}

static void zw_op_alloc_free(zw_t *w, input_t *in)
{
    uint8_t how = in_u8(in);
    uint32_t n = how >> 2;
    uint32_t idx[80];
    memif_ct_pool_t *p = w->pool[ZP_TX];
    snprintf(g_op, sizeof(g_op), "pool %s %u", how & 1 ? "free" : "alloc", n);
    uint32_t f;
    memif_ct_pool_counts(p, &f, NULL, NULL);
    if (!(how & 1)) {
        uint32_t got = memif_ct_pool_alloc(p, idx, n);
        CHECK(got == (n < f ? n : f));
        for (uint32_t i = 0; i < got; i++) {
            CHECK(idx[i] < w->count[ZP_TX] && !w->app[idx[i]]);
            w->app[idx[i]] = 1;
        }
    } else {
        /* Some the application holds, maybe one twice, maybe one it does not hold. */
        uint32_t held = zw_app_list(w, idx), k = 0, bad = 0;
        uint32_t pick[8];
        for (uint32_t i = 0; i < (n & 7) && held; i++)
            pick[k++] = idx[in_u8(in) % held];
        if (how & 2)
            pick[k++] = in_u8(in) % (w->count[ZP_TX] + 2);
        for (uint32_t i = 0; i < k; i++) {
            int valid = pick[i] < w->count[ZP_TX] && w->app[pick[i]];
            bad |= !valid;
            if (valid)
                w->app[pick[i]] = 0;
        }
        CHECK(memif_ct_pool_free(p, pick, k) == (bad ? MEMIF_CT_ERR_STATE : MEMIF_CT_OK));
    }
    zw_pool_check(w);
}

/* ---- pool client S2M ---- */

/* After a pool TX call published slots [from, to): the model takes the buffers the slot table
 * names, each FREE (tx_burst) or given (tx_buffers) before; descriptors and bytes as sent. */
static void zw_check_published(zw_t *w, uint16_t from, uint16_t to, const uint32_t *given, const uint32_t *lengths,
                               const uint8_t *data, uint32_t packets)
{
    const int t = MEMIF_CT_RING_TYPE_S2M;
    CHECK(zw_index(w, t, HEAD, 0) == to || from == to);
    zw_allow(w, ZR_RINGS, w->ring_off[t] + HEAD, 2);
    uint32_t pkt = 0, left = packets && !given ? lengths[0] : 0;
    size_t pos = 0;
    for (uint16_t i = from; i != to; i++) {
        uint16_t s = i & (w->N - 1);
        uint32_t b = w->tab[ZP_TX][s];
        CHECK(w->m_slot[s] == ZC_NONE); /* only a slot whose buffer came back is reused */
        CHECK(b < w->count[ZP_TX]);
        if (given) {
            CHECK(b == given[pkt] && w->app[b]);
            w->app[b] = 0;
        } else {
            CHECK(!w->app[b]);
            for (uint16_t o = 0; o < w->N; o++)
                CHECK(w->m_slot[o] != b);
        }
        w->m_slot[s] = b;
        memif_ct_desc_t d = zw_desc(w, t, i, 0);
        uint32_t n = given ? lengths[pkt] : (left < w->bsize ? left : w->bsize);
        CHECK(pkt < packets);
        CHECK(d.region == ZR_ARENA && d.offset == zw_buf_off(w, ZP_TX, b) && d.length == n);
        zw_allow(w, ZR_RINGS, zw_desc_off(w, t, i), offsetof(memif_ct_desc_t, metadata));
        if (!given) {
            CHECK(memcmp(w->regions[ZR_ARENA].base + d.offset, data + pos, n) == 0);
            zw_allow(w, ZR_ARENA, d.offset, n);
            pos += n;
            left -= n;
        }
        CHECK(d.flags == (left ? NEXT : 0));
        if (!left && ++pkt < packets)
            left = given ? 0 : lengths[pkt];
    }
    CHECK(pkt == packets);
    w->m_head = to;
}

static void zw_op_ctx(zw_t *w, input_t *in)
{
    const int qi = ZQ_CTX;
    memif_ct_queue_t *q = w->q[qi];
    uint8_t how = in_u8(in);
    int kind = how % 3; /* 0: tx_buffers, 1: tx_burst (copies into pool buffers), 2: reclaim */
    uint32_t n = (how >> 2) % MAX_BURST, idx[MAX_BURST], lens[MAX_BURST], held[80];
    uint8_t *data = NULL;
    size_t data_size = 0;
    int bad_arg = 0, bad_state = 0, too_big = 0;
    if (kind == 0) {
        uint32_t nheld = zw_app_list(w, held);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t v = in_u8(in);
            idx[i] = nheld ? held[v % nheld] : v;
            if (v >= 0xF8) /* now and then one the application does not hold, or out of range */
                idx[i] = (uint32_t)(v - 0xF8) + (v & 1 ? w->count[ZP_TX] - 1 : 0);
            lens[i] = v == 0xF0 ? 0 : v == 0xF1 ? w->pbsize + 1 : 1 + in_u16(in) % w->pbsize;
            bad_arg |= lens[i] == 0 || lens[i] > w->pbsize;
            bad_state |= idx[i] >= w->count[ZP_TX] || !w->app[idx[i]];
            for (uint32_t j = 0; j < i; j++)
                bad_state |= idx[j] == idx[i];
        }
    } else if (kind == 1) {
        for (uint32_t i = 0; i < n; i++) {
            uint16_t v = in_u16(in);
            lens[i] = v & 0x8000 ? 1u + (v & 0x7fff) % (w->bsize * (w->N + 1u)) : 1u + v % (2u * w->bsize);
            data_size += lens[i];
            too_big |= (lens[i] + w->bsize - 1) / w->bsize > w->N;
        }
        data = malloc(data_size + 1);
        CHECK(data != NULL);
        w->seq++;
        for (size_t i = 0; i < data_size; i++)
            data[i] = (uint8_t)(w->seq * 131u + i * 7u);
    }
    snprintf(g_op, sizeof(g_op), "%s on %s: %u", kind == 0 ? "tx_buffers" : kind == 1 ? "tx_burst" : "reclaim",
             ZQ_NAME[qi], n);
    zw_begin(w, qi);
    memif_ct_stats_t was = w->stats[qi];
    uint16_t head0 = w->m_head;
    uint32_t free0;
    memif_ct_pool_counts(w->pool[ZP_TX], &free0, NULL, NULL);
    int rc = kind == 0 ? memif_ct_tx_buffers(q, idx, lens, n)
             : kind == 1 ? memif_ct_tx_burst(q, data, data_size, lens, n)
                         : memif_ct_queue_reclaim(q);
    uint64_t bytes = 0;
    memif_ct_stats_t now;
    memif_ct_queue_stats(q, &now);
    if (kind == 1 && too_big) { /* the arguments are checked first */
        CHECK(rc == MEMIF_CT_ERR_TOO_BIG);
    } else if (w->dropped[ZP_TX]) {
        CHECK(rc == MEMIF_CT_ERR_STATE);
    } else if (kind == 0 && (bad_arg || bad_state)) {
        CHECK(rc == (bad_arg ? MEMIF_CT_ERR_ARG : MEMIF_CT_ERR_STATE));
    } else {
        uint32_t given = 0;
        for (uint16_t s = 0; s < w->N; s++)
            given += w->m_slot[s] != ZC_NONE;
        int32_t room = zw_model_reclaim(w);
        for (uint16_t s = 0; s < w->N; s++)
            given -= w->m_slot[s] != ZC_NONE;
        CHECK((room < 0) == (now.bad_ring > was.bad_ring)); /* an impossible tail is counted */
        if (kind == 2) {
            CHECK(rc == (int)given);
        } else {
            /* In order, as far as free slots (and, copying, free pool buffers) go. */
            uint32_t expect = 0, slots = 0, bufs = free0 + given;
            for (; room > 0 && expect < n; expect++) {
                uint32_t need = kind == 0 ? 1 : (lens[expect] + w->bsize - 1) / w->bsize;
                if (slots + need > (uint32_t)room || (kind == 1 && need > bufs))
                    break;
                slots += need;
                bufs -= kind == 1 ? need : 0;
            }
            CHECK(rc == (int)expect);
            CHECK(q->last_head == (uint16_t)(head0 + slots));
            zw_check_published(w, head0, q->last_head, kind == 0 ? idx : NULL, lens, data, expect);
            for (uint32_t i = 0; i < expect; i++)
                bytes += lens[i];
        }
    }
    zw_end(w, qi, kind == 2 || rc < 0 ? 0 : (uint64_t)rc, bytes);
    free(data);
}

/* ---- consumers: rx_burst, rx_peek, rx_release ---- */

/* A chain as it was before the call, from slot index start: its end, completeness, validity. */
typedef struct {
    uint16_t slots;
    int complete, valid;
    uint64_t total;
} zchain_t;

static zchain_t zw_chain(const zw_t *w, int t, int client, uint16_t start, uint16_t limit)
{
    zchain_t c = {0, 0, 1, 0};
    while (c.slots < limit && !c.complete) {
        uint16_t index = (uint16_t)(start + c.slots++);
        memif_ct_desc_t d = zw_desc(w, t, index, 1);
        c.valid &= zw_valid(w, &d);
        if (client)
            c.valid &= d.region == ZR_ARENA && d.length <= w->bsize && d.offset == zw_posting_off(w, index);
        c.total += d.length;
        c.complete = !(d.flags & NEXT);
    }
    return c;
}

/* The bytes of the chain at start as they were, compared with got[0..total). */
static int zw_chain_bytes(const zw_t *w, int t, uint16_t start, uint16_t slots, const uint8_t *got)
{
    size_t at = 0;
    for (uint16_t k = 0; k < slots; k++) {
        memif_ct_desc_t d = zw_desc(w, t, (uint16_t)(start + k), 1);
        if (memcmp(got + at, w->snap[d.region] + d.offset, d.length) != 0)
            return 0;
        at += d.length;
    }
    return 1;
}

static void zw_op_rx(zw_t *w, int qi, input_t *in)
{
    const int client = qi == ZQ_CRX, t = client ? MEMIF_CT_RING_TYPE_M2S : MEMIF_CT_RING_TYPE_S2M;
    memif_ct_queue_t *q = w->q[qi];
    uint8_t how = in_u8(in);
    uint32_t max_pkts = (how >> 2) % (MAX_BURST + 1);
    int kind = how & 3; /* 0, 1: peek; 2: release; 3: rx_burst */
    uint16_t sz = in_u16(in);
    size_t out_size = sz & 0x8000 ? 0 : sz % (2u * w->N * w->bsize + 1u);
    uint8_t *out = malloc(out_size ? out_size : 1);
    CHECK(out != NULL);
    uint32_t lengths[MAX_BURST + 1];
    memif_ct_pkt_t pkts[MAX_BURST + 1];
    snprintf(g_op, sizeof(g_op), "%s on %s: max %u, %zu bytes", kind < 2 ? "rx_peek" : kind == 2 ? "rx_release" : "rx_burst",
             ZQ_NAME[qi], max_pkts, out_size);
    zw_begin(w, qi);
    memif_ct_queue_t before = *q;
    memif_ct_stats_t was = w->stats[qi];
    uint32_t peeked0 = memif_ct_rx_peeked(q);
    int blocked = client && w->dropped[ZP_RX];
    int rc;
    if (kind < 2)
        rc = memif_ct_rx_peek(q, max_pkts ? pkts : NULL, max_pkts, out_size ? out : NULL, out_size); /* or none */
    else if (kind == 2)
        rc = memif_ct_rx_release(q);
    else
        rc = memif_ct_rx_burst(q, out, out_size, lengths, max_pkts);
    memif_ct_stats_t now;
    memif_ct_queue_stats(q, &now);
    /* What each side may write: a server its tail and the consumed mark (length 0); a client its
     * head and its own postings. */
    if (client) {
        zw_allow(w, ZR_RINGS, w->ring_off[t] + HEAD, 2);
        for (uint16_t s = 0; s < w->N; s++) {
            memif_ct_desc_t d = zw_desc(w, t, s, 0), old = zw_desc(w, t, s, 1);
            if (memcmp(&d, &old, sizeof(d)) != 0) {
                CHECK(d.flags == 0 && d.region == ZR_ARENA && d.length == w->bsize && d.offset == zw_posting_off(w, s));
                zw_allow(w, ZR_RINGS, zw_desc_off(w, t, s), sizeof(d));
                w->res_clean &= !w->nres; /* our client re-posting under the server's reservations */
            }
        }
    } else {
        zw_allow(w, ZR_RINGS, w->ring_off[t] + TAIL, 2);
        CHECK(q->last_tail == before.last_tail || zw_index(w, t, TAIL, 0) == q->last_tail);
        for (uint16_t s = 0; s < w->N; s++) {
            memif_ct_desc_t d = zw_desc(w, t, s, 0), old = zw_desc(w, t, s, 1);
            if (memcmp(&d, &old, sizeof(d)) != 0) {
                CHECK(d.length == 0 && d.flags == old.flags && d.region == old.region && d.offset == old.offset);
                zw_allow(w, ZR_RINGS, zw_desc_off(w, t, s) + offsetof(memif_ct_desc_t, length), 4);
            }
        }
    }
    uint64_t bytes = 0;
    if (blocked) {
        CHECK(rc == (kind == 2 ? 0 : MEMIF_CT_ERR_STATE));
    } else if (kind == 2) {
        CHECK(rc == (int)peeked0 && memif_ct_rx_peeked(q) == 0);
        CHECK(q->last_tail == (uint16_t)(before.last_tail + peeked0));
    } else if (kind == 3 && peeked0) {
        CHECK(rc == MEMIF_CT_ERR_STATE);
    } else {
        CHECK(rc >= 0 && (uint32_t)rc <= max_pkts);
        uint16_t peer = zw_index(w, t, client ? TAIL : HEAD, 1);
        uint16_t limit = client ? (uint16_t)(before.last_head - before.last_tail) : w->N;
        uint16_t avail = (uint16_t)(peer - before.last_tail);
        uint16_t start = (uint16_t)(before.last_tail + peeked0);
        uint16_t used = kind < 2 ? (uint16_t)(memif_ct_rx_peeked(q) - peeked0)
                                 : (uint16_t)(q->last_tail - before.last_tail);
        if (avail > limit || avail < peeked0) {
            CHECK(rc == 0 && now.bad_ring > was.bad_ring);
        } else {
            CHECK(used <= avail - peeked0);
            uint32_t p = 0, chains = 0;
            size_t pos = 0;
            for (uint16_t i = 0; i < used;) {
                zchain_t ch = zw_chain(w, t, client, (uint16_t)(start + i), (uint16_t)(used - i));
                chains++;
                uint64_t len = p < (uint32_t)rc ? (kind < 2 ? pkts[p].length : lengths[p]) : 0;
                if (ch.valid && ch.complete && p < (uint32_t)rc && len == ch.total) {
                    const uint8_t *got = out + pos;
                    int ok = 1;
                    if (kind < 2) {
                        memif_ct_desc_t d0 = zw_desc(w, t, (uint16_t)(start + i), 1);
                        CHECK(pkts[p].slots == ch.slots);
                        if (pkts[p].scratch) {
                            ok = pkts[p].addr == out + pos && pos + len <= out_size;
                        } else {
                            got = pkts[p].addr;
                            ok = got == w->regions[d0.region].base + d0.offset;
                            if (ok && d0.region == ZR_RINGS) { /* our consumed mark may be in it */
                                bytes += len;
                                p++;
                                i = (uint16_t)(i + ch.slots);
                                continue;
                            }
                        }
                    }
                    if (ok && zw_chain_bytes(w, t, (uint16_t)(start + i), ch.slots, got)) {
                        if (kind == 3 || pkts[p].scratch)
                            pos += len;
                        bytes += len;
                        p++;
                    }
                }
                i = (uint16_t)(i + ch.slots);
            }
            CHECK(p == (uint32_t)rc); /* every packet is one whole valid chain walked now, in order */
            uint64_t anomalies = now.bad_desc + now.drops + now.bad_ring - was.bad_desc - was.drops - was.bad_ring;
            CHECK(chains - p <= anomalies);
            CHECK(pos <= out_size);
        }
    }
    zw_end(w, qi, rc > 0 && kind != 2 ? (uint64_t)rc : 0, bytes);
    free(out);
}

static void zw_op_refill(zw_t *w)
{
    memif_ct_queue_t *q = w->q[ZQ_CRX];
    snprintf(g_op, sizeof(g_op), "refill on client M2S");
    zw_begin(w, ZQ_CRX);
    uint16_t head0 = q->last_head, tail0 = q->last_tail;
    int rc = memif_ct_refill(q);
    if (w->dropped[ZP_RX]) {
        CHECK(rc == MEMIF_CT_ERR_STATE);
    } else {
        CHECK(rc == w->N - (uint16_t)(head0 - tail0));
        zw_allow(w, ZR_RINGS, w->ring_off[MEMIF_CT_RING_TYPE_M2S] + HEAD, 2);
        for (int i = 0; i < rc; i++) {
            uint16_t index = (uint16_t)(head0 + i);
            memif_ct_desc_t d = zw_desc(w, MEMIF_CT_RING_TYPE_M2S, index, 0);
            CHECK(d.flags == 0 && d.region == ZR_ARENA && d.length == w->bsize && d.offset == zw_posting_off(w, index));
            zw_allow(w, ZR_RINGS, zw_desc_off(w, MEMIF_CT_RING_TYPE_M2S, index), sizeof(d));
            w->res_clean &= !w->nres;
        }
    }
    zw_end(w, ZQ_CRX, 0, 0);
}

/* ---- server M2S: reserve, commit, unreserve, tx_burst ---- */

static void zw_op_stx(zw_t *w, input_t *in)
{
    const int qi = ZQ_STX, t = MEMIF_CT_RING_TYPE_M2S;
    memif_ct_queue_t *q = w->q[qi];
    uint8_t how = in_u8(in);
    uint32_t n = (how >> 2) % (ZC_MAX_N + 2);
    memif_ct_buf_t out[ZC_MAX_N + 2];
    uint32_t lens[ZC_MAX_N + 2];
    const char *names[4] = {"tx_reserve", "tx_commit", "tx_unreserve", "tx_burst"};
    snprintf(g_op, sizeof(g_op), "%s on %s: %u", names[how & 3], ZQ_NAME[qi], n);
    int bad_len = 0;
    uint8_t *data = NULL;
    size_t data_size = 0;
    for (uint32_t i = 0; (how & 3) == 1 && i < n; i++) {
        uint8_t v = in_u8(in);
        uint32_t cap = i < w->nres ? w->res[i].capacity : w->bsize;
        lens[i] = v == 0 ? 0 : v == 1 ? cap + 1 : 1 + in_u16(in) % cap;
        bad_len |= lens[i] == 0 || lens[i] > cap;
    }
    for (uint32_t i = 0; (how & 3) == 3 && i < n % MAX_BURST; i++) {
        lens[i] = 1 + in_u16(in) % (2u * w->bsize);
        data_size += lens[i];
    }
    if ((how & 3) == 3) {
        data = calloc(1, data_size + 1);
        CHECK(data != NULL);
    }
    zw_begin(w, qi);
    memif_ct_queue_t before = *q;
    int rc;
    uint64_t packets = 0, bytes = 0;
    switch (how & 3) {
    case 0:
        rc = memif_ct_tx_reserve(q, out, n);
        CHECK(rc >= 0 && (uint32_t)rc <= n && w->nres + (uint32_t)rc <= w->N);
        for (uint16_t s = 0; s < w->N; s++) { /* bad posted ones are marked: length 0, flags 0 */
            zw_allow(w, ZR_RINGS, zw_desc_off(w, t, s), 2);
            zw_allow(w, ZR_RINGS, zw_desc_off(w, t, s) + offsetof(memif_ct_desc_t, length), 4);
        }
        if (w->nres == 0)
            w->res_clean = 1;
        for (int i = 0; i < rc; i++) {
            memif_ct_buf_t *b = &out[i];
            CHECK(b->region < ZR_NUM && w->regions[b->region].base && b->capacity > 0);
            CHECK(b->offset + b->capacity <= w->regions[b->region].size);
            CHECK(b->addr == w->regions[b->region].base + b->offset);
            w->res_clean &= b->region == ZR_ARENA && b->offset >= w->rx_start; /* not where pool TX copies */
            for (uint32_t j = 0; j < w->nres; j++)
                w->res_clean &= !(w->res[j].region == b->region && w->res[j].offset < b->offset + b->capacity &&
                                  b->offset < w->res[j].offset + w->res[j].capacity);
            w->res[w->nres] = *b;
            w->res_seed[w->nres++] = ++w->seq;
        }
        break;
    case 1:
        rc = memif_ct_tx_commit(q, lens, n);
        zw_allow(w, ZR_RINGS, w->ring_off[t] + TAIL, 2);
        for (uint16_t s = 0; s < w->N; s++) {
            zw_allow(w, ZR_RINGS, zw_desc_off(w, t, s), 2);
            zw_allow(w, ZR_RINGS, zw_desc_off(w, t, s) + offsetof(memif_ct_desc_t, length), 4);
        }
        if (w->res_clean && (n > w->nres || bad_len)) {
            CHECK(rc == MEMIF_CT_ERR_ARG && q->last_tail == before.last_tail);
        } else if (w->res_clean) {
            /* Exactly the reserved buffers, in order, with the lengths and bytes committed; the
             * slots between them only handed back empty. */
            CHECK(rc == (int)n);
            uint32_t k = 0;
            for (uint16_t i = before.last_tail; i != q->last_tail; i++) {
                memif_ct_desc_t d = zw_desc(w, t, i, 0);
                CHECK((d.flags & ~NEXT) == 0 && !(d.flags & NEXT));
                if (d.length == 0)
                    continue;
                CHECK(k < n && d.region == w->res[k].region && d.offset == w->res[k].offset && d.length == lens[k]);
                uint8_t *p = w->regions[d.region].base + d.offset;
                for (uint32_t j = 0; j < d.length; j++)
                    CHECK(p[j] == (uint8_t)(w->res_seed[k] * 29u + j));
                bytes += d.length;
                k++;
            }
            CHECK(k == n);
            packets = n;
        } else {
            CHECK(rc == (int)n || rc == MEMIF_CT_ERR_ARG);
            memif_ct_stats_t now;
            memif_ct_queue_stats(q, &now);
            packets = now.packets - w->stats[qi].packets;
            bytes = now.bytes - w->stats[qi].bytes;
            CHECK(packets <= n);
        }
        if (rc >= 0) {
            memmove(w->res, w->res + n, (w->nres - n) * sizeof(w->res[0]));
            memmove(w->res_seed, w->res_seed + n, (w->nres - n) * sizeof(w->res_seed[0]));
            w->nres = w->nres > n ? w->nres - n : 0;
        }
        break;
    case 2:
        rc = memif_ct_tx_unreserve(q, n);
        if (w->res_clean)
            CHECK(rc == (n <= w->nres ? MEMIF_CT_OK : MEMIF_CT_ERR_ARG));
        else
            CHECK(rc == MEMIF_CT_OK || rc == MEMIF_CT_ERR_ARG);
        if (rc == MEMIF_CT_OK)
            w->nres = w->nres > n ? w->nres - n : 0;
        break;
    default:
        rc = memif_ct_tx_burst(q, data, data_size, lens, n % MAX_BURST);
        if (memif_ct_tx_reserved(&before)) {
            CHECK(rc == MEMIF_CT_ERR_STATE);
        } else {
            CHECK((rc >= 0 && (uint32_t)rc <= n % MAX_BURST) || rc == MEMIF_CT_ERR_TOO_BIG);
            for (int i = 0; i < rc; i++)
                bytes += lens[i];
            packets = rc > 0 ? (uint64_t)rc : 0;
            /* It fills whatever the client posted: memory safety (ASan's) is what is left. */
            for (int r = 0; r < ZR_NUM; r++)
                zw_allow(w, r, 0, w->regions[r].size);
        }
        break;
    }
    if (!w->res_clean && memif_ct_tx_reserved(q) < w->nres)
        w->nres = memif_ct_tx_reserved(q); /* the peer moved things: follow the library */
    if (w->nres == 0)
        w->res_clean = 1;
    zw_end(w, qi, packets, bytes);
    /* The server application fills what it reserved (shared memory: the peer's to read). */
    if ((how & 3) == 0)
        for (uint32_t i = w->nres - (uint32_t)rc; i < w->nres; i++)
            for (uint32_t j = 0; j < w->res[i].capacity; j++)
                w->res[i].addr[j] = (uint8_t)(w->res_seed[i] * 29u + j);
    free(data);
}

/* ---- teardown at any point, and misuse ---- */

static void zw_op_drop(zw_t *w, input_t *in)
{
    int p = in_u8(in) & 1;
    int qi = p == ZP_TX ? ZQ_CTX : ZQ_CRX;
    snprintf(g_op, sizeof(g_op), "drop_pool on %s", ZQ_NAME[qi]);
    zw_begin(w, qi);
    int rc = memif_ct_queue_drop_pool(w->q[qi]);
    if (!w->pool[p] || w->dropped[p]) {
        CHECK(rc == MEMIF_CT_ERR_STATE);
    } else {
        uint32_t held = 0;
        for (uint16_t s = 0; s < w->N; s++)
            held += (p == ZP_TX ? w->m_slot[s] : w->rxbuf[s]) != ZC_NONE;
        CHECK(rc == (int)held);
        w->dropped[p] = 1;
        for (uint16_t s = 0; s < w->N; s++)
            w->m_slot[s] = p == ZP_TX ? ZC_NONE : w->m_slot[s];
        CHECK(memif_ct_rx_peeked(w->q[qi]) == 0 || p == ZP_TX);
    }
    /* A second pool, now or ever, is refused. */
    if (w->pool[p])
        CHECK(memif_ct_queue_set_pool(w->q[qi], w->pool[p], w->tab[p]) == MEMIF_CT_ERR_STATE);
    zw_end(w, qi, 0, 0);
}

/* ---- the peer ---- */

static void zw_peer(zw_t *w, input_t *in)
{
    uint8_t which = in_u8(in);
    int t = which & 1;
    memif_ct_ring_t *ring = zw_ring(w, t);
    if (w->nres)
        w->res_clean = 0; /* anything between reserve and commit */
    if (which & 2) { /* an index: head or tail, near the other one, or anything */
        _Atomic uint16_t *index = which & 4 ? &ring->tail : &ring->head;
        uint16_t v = which & 8 ? in_u16(in) : (uint16_t)(atomic_load(index) + (int8_t)in_u8(in) % (w->N + 2));
        atomic_store(index, v);
        return;
    }
    uint16_t slot = which & 4 ? (uint16_t)(atomic_load(which & 8 ? &ring->tail : &ring->head) + in_u8(in) % 8 - 4)
                              : in_u8(in);
    memif_ct_desc_t *dp = &ring->desc[slot & (w->N - 1)];
    memif_ct_desc_t d = *dp;
    uint8_t what = in_u8(in);
    if (what & 1)
        d.flags = what & 2 ? in_u16(in) : (uint16_t)(d.flags ^ NEXT);
    if (what & 4)
        d.region = (uint16_t)(what & 8 ? in_u16(in) : in_u8(in) % (ZR_NUM + 1));
    if (what & 16) {
        uint32_t v = in_u32(in);
        d.offset = what & 32 ? v : (uint32_t)(d.offset + (int8_t)v); /* near where it was: into a neighbour */
    }
    if (what & 64) {
        uint32_t v = in_u32(in);
        d.length = what & 128 ? v : (uint32_t)(d.length + (int8_t)v);
    }
    if (what == 0) { /* a length that ends exactly at, or one past, its region's end */
        uint64_t size = d.region < ZR_NUM ? w->regions[d.region].size : 0;
        d.length = (uint32_t)(size - d.offset + (in_u8(in) & 1));
    }
    *dp = d;
}

static void zw_peer_bytes(zw_t *w, input_t *in)
{
    int r = in_u8(in) & 1 ? ZR_ARENA : ZR_RINGS;
    uint64_t size = w->regions[r].size;
    uint64_t off = in_u16(in) % size, len = in_u8(in) % 32;
    if (w->nres)
        w->res_clean = 0;
    memset(w->regions[r].base + off, in_u8(in), len < size - off ? len : size - off);
}

/* ---- one session ---- */

static void zw_pool_make(zw_t *w, int p, uint64_t at, uint32_t nbuf, int two, uint32_t slack)
{
    uint32_t first = two ? (nbuf + 1) / 2 : nbuf;
    uint64_t sizes[2] = {(uint64_t)first * w->pbsize + slack, (uint64_t)(nbuf - first) * w->pbsize + slack};
    w->nseg[p] = two && nbuf > first ? 2 : 1;
    for (uint32_t s = 0; s < w->nseg[p]; s++) {
        w->seg[p][s] = (memif_ct_segment_t){w->regions[ZR_ARENA].base + at, sizes[s], at, ZR_ARENA, {0}};
        at += sizes[s];
    }
    uint64_t need = memif_ct_pool_bytes(w->seg[p], w->nseg[p], w->pbsize);
    CHECK(need != 0);
    w->pool[p] = aligned_alloc(8, (size_t)(need + 7) / 8 * 8);
    CHECK(w->pool[p] && memif_ct_pool_init(w->pool[p], (size_t)need, w->seg[p], w->nseg[p], w->pbsize) == 0);
    w->count[p] = nbuf;
    CHECK(memif_ct_pool_count(w->pool[p]) == nbuf);
}

static void zw_setup(zw_t *w, input_t *in)
{
    memset(w, 0, sizeof(*w));
    w->log2 = 1 + in_u8(in) % 4;
    w->N = (uint16_t)(1u << w->log2);
    w->bsize = MEMIF_CT_MIN_BUFFER_SIZE + in_u8(in) % 129;
    w->pbsize = w->bsize + in_u8(in) % 65;
    uint8_t mode = in_u8(in);
    uint32_t ntx = 1 + in_u8(in) % (2u * w->N + 2), nrx = w->N + (mode >> 4) % 3;
    uint32_t slack = mode & 4 ? 1 + mode % 31 : 0;
    int rx_pool = !(mode & 1), two = (mode & 2) != 0;
    uint64_t rb = memif_ct_ring_bytes(w->log2);
    uint64_t tx_bytes = (uint64_t)ntx * w->pbsize + 2 * slack;
    uint64_t rx_bytes = rx_pool ? (uint64_t)nrx * w->pbsize + 2 * slack : (uint64_t)w->N * w->bsize;
    uint64_t sizes[ZR_NUM] = {2 * rb, tx_bytes + rx_bytes, 0, 1 + in_u8(in) % 64};
    w->regions = calloc(ZR_NUM, sizeof(memif_ct_region_t));
    CHECK(w->regions != NULL);
    for (int r = 0; r < ZR_NUM; r++) {
        if (r == ZR_UNMAPPED)
            continue;
        w->regions[r].base = aligned_alloc(64, (size_t)(sizes[r] + 63) / 64 * 64); /* ASan: exact size */
        w->regions[r].size = sizes[r];
        w->snap[r] = malloc(sizes[r]);
        w->allowed[r] = malloc(sizes[r]);
        CHECK(w->regions[r].base && w->snap[r] && w->allowed[r]);
        for (uint64_t i = 0; i < sizes[r]; i++)
            w->regions[r].base[i] = (uint8_t)(0x5A ^ (r << 5) ^ i ^ (i >> 7));
    }
    w->regions[ZR_UNMAPPED].size = in_u32(in);
    w->ring_off[0] = 0;
    w->ring_off[1] = rb;
    zw_pool_make(w, ZP_TX, 0, ntx, two, slack);
    if (rx_pool)
        zw_pool_make(w, ZP_RX, tx_bytes, nrx, two, slack);
    else
        w->crx_off = tx_bytes;
    w->rx_start = tx_bytes;
    w->app = calloc(ntx, 1);
    for (int p = 0; p < 2; p++)
        w->tab[p] = malloc(w->N * sizeof(uint32_t));
    CHECK(w->app && w->tab[0] && w->tab[1]);
    for (uint16_t s = 0; s < w->N; s++)
        w->m_slot[s] = w->rxbuf[s] = w->tab[ZP_RX][s] = ZC_NONE;
    for (int qi = 0; qi < ZQ_NUM; qi++) {
        w->q[qi] = calloc(1, sizeof(memif_ct_queue_t));
        CHECK(w->q[qi] != NULL);
    }
    const int S = MEMIF_CT_RING_TYPE_S2M, M = MEMIF_CT_RING_TYPE_M2S;
    uint16_t mreg = rx_pool ? MEMIF_CT_NO_REGION : ZR_ARENA;
    CHECK(memif_ct_ring_init(zw_ring(w, S), w->log2, MEMIF_CT_NO_REGION, 0, w->bsize) == 0);
    CHECK(memif_ct_ring_init(zw_ring(w, M), w->log2, mreg, w->crx_off, w->bsize) == 0);
    CHECK(memif_ct_queue_init(w->q[ZQ_CTX], zw_ring(w, S), w->log2, MEMIF_CT_ROLE_CLIENT, S, w->regions, ZR_NUM,
                              MEMIF_CT_NO_REGION, 0, w->bsize) == 0);
    CHECK(memif_ct_queue_init(w->q[ZQ_SRX], zw_ring(w, S), w->log2, MEMIF_CT_ROLE_SERVER, S, w->regions, ZR_NUM, 0, 0,
                              0) == 0);
    CHECK(memif_ct_queue_init(w->q[ZQ_CRX], zw_ring(w, M), w->log2, MEMIF_CT_ROLE_CLIENT, M, w->regions, ZR_NUM, mreg,
                              w->crx_off, w->bsize) == 0);
    CHECK(memif_ct_queue_init(w->q[ZQ_STX], zw_ring(w, M), w->log2, MEMIF_CT_ROLE_SERVER, M, w->regions, ZR_NUM, 0, 0,
                              0) == 0);
    /* Before its pool, a pool client refuses traffic. */
    uint32_t one = 1;
    uint8_t byte = 0;
    CHECK(memif_ct_tx_burst(w->q[ZQ_CTX], &byte, 1, &one, 1) == MEMIF_CT_ERR_STATE);
    CHECK(memif_ct_queue_set_pool(w->q[ZQ_CTX], w->pool[ZP_TX], w->tab[ZP_TX]) == 0);
    if (rx_pool) {
        CHECK(memif_ct_refill(w->q[ZQ_CRX]) == MEMIF_CT_ERR_STATE);
        CHECK(memif_ct_queue_set_pool(w->q[ZQ_CRX], w->pool[ZP_RX], w->tab[ZP_RX]) == 0);
        memcpy(w->rxbuf, w->tab[ZP_RX], w->N * sizeof(uint32_t));
    }
    CHECK(memif_ct_refill(w->q[ZQ_CRX]) == w->N);
    for (int qi = 0; qi < ZQ_NUM; qi++)
        memif_ct_queue_stats(w->q[qi], &w->stats[qi]);
    w->res_clean = 1;
    zw_pool_check(w);
}

static void zw_teardown(zw_t *w)
{
    for (int qi = 0; qi < ZQ_NUM; qi++)
        free(w->q[qi]);
    for (int r = 0; r < ZR_NUM; r++) {
        free(w->regions[r].base);
        free(w->snap[r]);
        free(w->allowed[r]);
    }
    for (int p = 0; p < 2; p++) {
        free(w->pool[p]);
        free(w->tab[p]);
    }
    free(w->app);
    free(w->regions);
}

static void zc_session(input_t *in)
{
    zw_t w;
    snprintf(g_op, sizeof(g_op), "zero-copy setup");
    zw_setup(&w, in);
    for (int ops = 0; in->n && ops < MAX_OPS; ops++) {
        uint8_t op = in_u8(in);
        switch (op % 12) {
        case 0:
        case 1:
            zw_op_ctx(&w, in);
            break;
        case 2:
            zw_op_alloc_free(&w, in);
            break;
        case 3:
            zw_op_rx(&w, ZQ_SRX, in);
            break;
        case 4:
            zw_op_rx(&w, ZQ_CRX, in);
            break;
        case 5:
        case 6:
            zw_op_stx(&w, in);
            break;
        case 7:
        case 8:
            zw_peer(&w, in);
            break;
        case 9:
            op & 0x10 ? zw_peer_bytes(&w, in) : zw_op_refill(&w);
            break;
        case 10:
            zw_op_rx(&w, op & 0x10 ? ZQ_SRX : ZQ_CRX, in);
            break;
        default:
            if (op & 0x30) /* drop_pool: rarely */
                zw_peer(&w, in);
            else
                zw_op_drop(&w, in);
            break;
        }
    }
    zw_teardown(&w);
}
