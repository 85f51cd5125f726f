/* test_pool.c - unit tests of memif-ct's zero-copy pieces: memseg math, the buffer pool, client
 * queues whose buffers come from a pool, TX by pool buffer and into reserved posted buffers,
 * and rx_peek/rx_release, including a hostile peer on each side.
 *
 * The zero-copy fixture lays memory out as a zero-copy client does (memif-protocol.md section 5,
 * "Zero-copy"): region 0 holds only the two rings (ring_init/queue_init with MEMIF_CT_NO_REGION),
 * region 1 is an arena shared by two pools (one per queue, two segments of one region). Every
 * region is its own allocation of its exact size, so ASan reports any access outside one.
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure. */
#include "memif_ct.h"
#include "minitest.h"

#include <pthread.h>
#include <stdlib.h>

#define S2M MEMIF_CT_RING_TYPE_S2M
#define M2S MEMIF_CT_RING_TYPE_M2S
#define CLIENT MEMIF_CT_ROLE_CLIENT
#define SERVER MEMIF_CT_ROLE_SERVER
#define NEXT MEMIF_CT_DESC_FLAG_NEXT
#define NOREG MEMIF_CT_NO_REGION

static uint16_t head_of(memif_ct_ring_t *r) { return atomic_load(&r->head); }
static uint16_t tail_of(memif_ct_ring_t *r) { return atomic_load(&r->tail); }

static memif_ct_stats_t stats_of(const memif_ct_queue_t *q)
{
    memif_ct_stats_t s;
    memif_ct_queue_stats(q, &s);
    return s;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static int filled(const uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)(seed * 131u + i * 7u + (i >> 8)))
            return 0;
    return 1;
}

static void check_counts(const memif_ct_pool_t *p, uint32_t free, uint32_t app, uint32_t ring)
{
    uint32_t f, a, r;
    memif_ct_pool_counts(p, &f, &a, &r);
    CHECK_EQ(f, free);
    CHECK_EQ(a, app);
    CHECK_EQ(r, ring);
    CHECK_EQ(f + a + r, memif_ct_pool_count(p));
}

/* A pool in fresh, exactly sized memory (free with free()). */
static memif_ct_pool_t *pool_new(const memif_ct_segment_t *segs, uint32_t n, uint32_t bsize)
{
    uint64_t need = memif_ct_pool_bytes(segs, n, bsize);
    if (!need)
        return NULL;
    memif_ct_pool_t *p = aligned_alloc(8, (size_t)(need + 7) / 8 * 8);
    if (p && memif_ct_pool_init(p, (size_t)need, segs, n, bsize) != MEMIF_CT_OK) {
        free(p);
        return NULL;
    }
    return p;
}

/* ---- zero-copy fixture ---- */

typedef struct {
    uint32_t log2, N, bsize, pbsize, nbuf; /* nbuf buffers of pbsize per pool */
    uint8_t *rings;                        /* region 0: S2M ring, M2S ring */
    size_t rings_size;
    uint8_t *arena;                        /* region 1: the TX pool's segment, then the RX pool's */
    size_t arena_size;
    memif_ct_region_t reg[2];
    memif_ct_ring_t *s2m, *m2s;
    memif_ct_segment_t seg_tx, seg_rx;
    memif_ct_pool_t *ptx, *prx;
    uint32_t *tab_tx, *tab_rx;
    memif_ct_queue_t ctx, srx, crx, stx;
} zc_t;

static int zc_setup(zc_t *z, uint32_t log2, uint32_t bsize, uint32_t pbsize, uint32_t nbuf)
{
    memset(z, 0, sizeof(*z));
    z->log2 = log2;
    z->N = 1u << log2;
    z->bsize = bsize;
    z->pbsize = pbsize;
    z->nbuf = nbuf;
    uint64_t rb = memif_ct_ring_bytes(log2);
    z->rings_size = (size_t)(2 * rb);
    z->rings = aligned_alloc(64, (z->rings_size + 63) / 64 * 64);
    uint32_t nrx = nbuf > z->N ? nbuf : z->N; /* the M2S pool needs a buffer per slot */
    z->arena_size = (size_t)(nbuf + nrx) * pbsize;
    z->arena = malloc(z->arena_size);
    z->tab_tx = calloc(z->N, 4);
    z->tab_rx = calloc(z->N, 4);
    if (!z->rings || !z->arena || !z->tab_tx || !z->tab_rx)
        return -1;
    memset(z->arena, 0xA5, z->arena_size);
    z->reg[0] = (memif_ct_region_t){z->rings, z->rings_size};
    z->reg[1] = (memif_ct_region_t){z->arena, z->arena_size};
    z->s2m = (memif_ct_ring_t *)z->rings;
    z->m2s = (memif_ct_ring_t *)(z->rings + rb);
    if (memif_ct_ring_init(z->s2m, log2, NOREG, 0, bsize) || memif_ct_ring_init(z->m2s, log2, NOREG, 0, bsize))
        return -1;
    z->seg_tx = (memif_ct_segment_t){z->arena, (uint64_t)nbuf * pbsize, 0, 1, {0}};
    z->seg_rx = (memif_ct_segment_t){z->arena + (size_t)nbuf * pbsize, (uint64_t)nrx * pbsize,
                                     (uint64_t)nbuf * pbsize, 1, {0}};
    z->ptx = pool_new(&z->seg_tx, 1, pbsize);
    z->prx = pool_new(&z->seg_rx, 1, pbsize);
    if (!z->ptx || !z->prx)
        return -1;
    if (memif_ct_queue_init(&z->ctx, z->s2m, log2, CLIENT, S2M, z->reg, 2, NOREG, 0, bsize) ||
        memif_ct_queue_init(&z->srx, z->s2m, log2, SERVER, S2M, z->reg, 2, 0, 0, 0) ||
        memif_ct_queue_init(&z->crx, z->m2s, log2, CLIENT, M2S, z->reg, 2, NOREG, 0, bsize) ||
        memif_ct_queue_init(&z->stx, z->m2s, log2, SERVER, M2S, z->reg, 2, 0, 0, 0))
        return -1;
    return 0;
}

/* Both client queues get their pools; the M2S one posts its buffers. */
static int zc_pools(zc_t *z)
{
    if (memif_ct_queue_set_pool(&z->ctx, z->ptx, z->tab_tx) || memif_ct_queue_set_pool(&z->crx, z->prx, z->tab_rx))
        return -1;
    return memif_ct_refill(&z->crx) == (int)z->N ? 0 : -1;
}

static void zc_teardown(zc_t *z)
{
    free(z->rings);
    free(z->arena);
    free(z->tab_tx);
    free(z->tab_rx);
    free(z->ptx);
    free(z->prx);
}

#define ZC(z, log2, bsize, pbsize, nbuf) REQUIRE(zc_setup((z), (log2), (bsize), (pbsize), (nbuf)) == 0)
#define ZCP(z, log2, bsize, pbsize, nbuf)                                                                             \
    do {                                                                                                               \
        ZC(z, log2, bsize, pbsize, nbuf);                                                                              \
        REQUIRE(zc_pools(z) == 0);                                                                                     \
    } while (0)

/* ====================================================================================== */
/* memseg math                                                                             */

static void test_memseg(void)
{
    static uint8_t space[5 * 4096];
    uint8_t *mem = space + 4096; /* with a page either side, so that neighbours are addressable */
    const memif_ct_segment_t segs[] = {
        {mem, 4096, 0, 1, {0}},
        {mem + 8192, 4096, 4096, 1, {0}},                     /* same region, after the first */
        {mem + 4096, 4096, 0xFFFFF000u, 3, {0}},              /* ends exactly at the u32 limit */
        {mem + 4096, 4096, 0x100000000ull - 2048, 4, {0}},    /* half of it past the u32 limit */
    };
    uint16_t region = 0;
    uint32_t off = 0;
    /* address -> descriptor */
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem, 1, &region, &off), MEMIF_CT_OK);
    CHECK_EQ(region, 1);
    CHECK_EQ(off, 0);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem, 4096, &region, &off), MEMIF_CT_OK);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem, 4097, &region, &off), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem + 4095, 1, &region, &off), MEMIF_CT_OK);
    CHECK_EQ(off, 4095);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem + 4095, 2, &region, &off), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem, 0, &region, &off), MEMIF_CT_ERR_RANGE);
    {
        /* A descriptor length is u32: a longer span is no descriptor, even in a segment that
         * claims more than 4 GiB (only the table is read: nothing is dereferenced). */
        memif_ct_segment_t huge = {.base = mem, .size = 1ull << 33, .offset = 0, .region = 1};
        CHECK_INT(memif_ct_memseg_to_desc(&huge, 1, mem, 1ull << 32, &region, &off), MEMIF_CT_ERR_RANGE);
        CHECK_INT(memif_ct_memseg_to_desc(&huge, 1, mem, UINT32_MAX, &region, &off), MEMIF_CT_OK);
    }
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem + 8192, 1, &region, &off), MEMIF_CT_OK);
    CHECK_EQ(region, 1);
    CHECK_EQ(off, 4096);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem + 8192 + 4095, 1, &region, &off), MEMIF_CT_OK);
    CHECK_EQ(off, 8191);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem + 3 * 4096, 1, &region, &off), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem - 1, 1, &region, &off), MEMIF_CT_ERR_RANGE);
    /* The middle page: segment 2 (region 3) up to the u32 limit; the first matching segment wins. */
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem + 4096 + 4095, 1, &region, &off), MEMIF_CT_OK);
    CHECK_EQ(region, 3);
    CHECK_EQ(off, 0xFFFFFFFFu);
    /* Segment 3 alone: offsets past 2^32 - 1 cannot be described. */
    CHECK_INT(memif_ct_memseg_to_desc(&segs[3], 1, mem + 4096 + 2047, 1, &region, &off), MEMIF_CT_OK);
    CHECK_EQ(off, 0xFFFFFFFFu);
    CHECK_INT(memif_ct_memseg_to_desc(&segs[3], 1, mem + 4096 + 2048, 1, &region, &off), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 0, mem, 1, &region, &off), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_memseg_to_desc(NULL, 4, mem, 1, &region, &off), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, NULL, 1, &region, &off), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem, 1, NULL, &off), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_memseg_to_desc(segs, 4, mem, 1, &region, NULL), MEMIF_CT_ERR_NULL);

    /* descriptor -> address */
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 0, 1) == mem);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 0, 4096) == mem);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 4095, 1) == mem + 4095);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 4095, 2) == NULL); /* straddles two segments */
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 4096, 1) == mem + 8192);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 8191, 1) == mem + 8192 + 4095);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 8192, 1) == NULL);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 0, 0) == NULL);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 2, 0, 1) == NULL); /* unknown region */
    CHECK(memif_ct_memseg_to_addr(segs, 4, 3, 0xFFFFF000u, 4096) == mem + 4096);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 3, 0xFFFFEFFFu, 1) == NULL);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 3, 0xFFFFFFFFu, 2) == NULL);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 3, UINT64_MAX, 1) == NULL);
    CHECK(memif_ct_memseg_to_addr(segs, 4, 1, 0, UINT64_MAX) == NULL);
    CHECK(memif_ct_memseg_to_addr(NULL, 4, 1, 0, 1) == NULL);
    /* Both ways agree on every byte of the first two segments. */
    for (uint32_t i = 0; i < 2; i++)
        for (uint64_t k = 0; k < 4096; k += 37) {
            REQUIRE(memif_ct_memseg_to_desc(segs, 2, segs[i].base + k, 4096 - k, &region, &off) == MEMIF_CT_OK);
            CHECK(memif_ct_memseg_to_addr(segs, 2, region, off, 4096 - k) == segs[i].base + k);
        }
}

/* ====================================================================================== */
/* pool                                                                                    */

static void test_pool_bytes_args(void)
{
    static uint8_t mem[8192];
    memif_ct_segment_t s[2] = {{mem, 4096, 0, 1, {0}}, {mem + 4096, 4096, 4096, 1, {0}}};
    CHECK(memif_ct_pool_bytes(s, 2, 64) > 0);
    CHECK(memif_ct_pool_bytes(s, 0, 64) == 0);
    CHECK(memif_ct_pool_bytes(s, 256, 64) == 0);
    CHECK(memif_ct_pool_bytes(NULL, 1, 64) == 0);
    CHECK(memif_ct_pool_bytes(s, 2, 63) == 0);
    CHECK(memif_ct_pool_bytes(s, 2, 65536) == 0);
    CHECK(memif_ct_pool_bytes(s, 1, 65535) == 0); /* no whole buffer */
    CHECK(memif_ct_pool_bytes(s, 1, 4096) > 0);
    memif_ct_segment_t t[2];
    memcpy(t, s, sizeof(s));
    t[0].base = NULL;
    CHECK(memif_ct_pool_bytes(t, 2, 64) == 0);
    memcpy(t, s, sizeof(s));
    t[1].base = mem + 4095; /* overlaps segment 0 in memory */
    CHECK(memif_ct_pool_bytes(t, 2, 64) == 0);
    memcpy(t, s, sizeof(s));
    t[1].offset = 4095; /* overlaps segment 0 in region 1 */
    CHECK(memif_ct_pool_bytes(t, 2, 64) == 0);
    t[1].region = 2; /* same offsets, another region: fine */
    CHECK(memif_ct_pool_bytes(t, 2, 64) > 0);
    memcpy(t, s, sizeof(s));
    t[1].offset = 0x100000000ull - 4096; /* ends at the u32 limit */
    CHECK(memif_ct_pool_bytes(t, 2, 64) > 0);
    t[1].offset++;
    CHECK(memif_ct_pool_bytes(t, 2, 64) == 0);

    uint64_t need = memif_ct_pool_bytes(s, 2, 64);
    uint64_t *m = calloc((size_t)need / 8 + 2, 8);
    REQUIRE(m);
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)m, (size_t)need - 1, s, 2, 64), MEMIF_CT_ERR_LAYOUT);
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)((uint8_t *)m + 4), (size_t)need, s, 2, 64), MEMIF_CT_ERR_ALIGN);
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)m, (size_t)need, s, 2, 63), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_pool_init(NULL, (size_t)need, s, 2, 64), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)m, (size_t)need, s, 2, 64), MEMIF_CT_OK);
    CHECK_EQ(memif_ct_pool_count((memif_ct_pool_t *)m), 128);
    CHECK_EQ(memif_ct_pool_count(NULL), 0);
    CHECK_EQ(memif_ct_pool_buffer_size(NULL), 0);
    free(m);

    /* The pool's memory inside one of its segments: it would hand out its own header as buffer 0
     * (a C review's ASan crash). The segment table inside the pool's memory: overwritten before
     * it is copied. */
    uint64_t *big = calloc(65536 / 8, 8);
    REQUIRE(big);
    memif_ct_segment_t inside = {(uint8_t *)big, 65536, 0, 1, {0}};
    uint64_t need1 = memif_ct_pool_bytes(&inside, 1, 2048);
    REQUIRE(need1 > 0);
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)big, (size_t)need1, &inside, 1, 2048), MEMIF_CT_ERR_LAYOUT);
    uint64_t *pm = calloc((size_t)need1 / 8 + 8, 8);
    REQUIRE(pm);
    memif_ct_segment_t *segs_inside = (memif_ct_segment_t *)(pm + 4);
    *segs_inside = inside;
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)pm, (size_t)need1, segs_inside, 1, 2048), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_pool_init((memif_ct_pool_t *)pm, (size_t)need1, &inside, 1, 2048), MEMIF_CT_OK);
    /* writing nothing reads nothing, even of a pool that was never set up */
    memif_ct_pool_t *zeroed = calloc(1, (size_t)need1);
    REQUIRE(zeroed);
    CHECK_INT(memif_ct_pool_write(zeroed, NULL, 0, NULL, 0, NULL, 0), 0);
    free(zeroed);
    free(pm);
    free(big);
}

static void test_pool_accounting(void)
{
    static uint8_t mem[4096 + 1000];
    /* Two segments with a partial buffer at each end: 63 and 15 whole 64-byte buffers. */
    memif_ct_segment_t s[2] = {{mem, 4096 - 1, 64, 2, {0}}, {mem + 4096, 1000, 0, 5, {0}}};
    memif_ct_pool_t *p = pool_new(s, 2, 64);
    REQUIRE(p);
    CHECK_EQ(memif_ct_pool_count(p), 63 + 15);
    CHECK_EQ(memif_ct_pool_buffer_size(p), 64);
    check_counts(p, 78, 0, 0);
    uint32_t idx[100];
    CHECK_EQ(memif_ct_pool_alloc(p, idx, 3), 3);
    CHECK_EQ(idx[0], 0);
    CHECK_EQ(idx[1], 1);
    CHECK_EQ(idx[2], 2);
    check_counts(p, 75, 3, 0);
    memif_ct_buf_t b;
    CHECK_INT(memif_ct_pool_buffer(p, 1, &b), MEMIF_CT_OK);
    CHECK(b.addr == mem + 64);
    CHECK_EQ(b.region, 2);
    CHECK_EQ(b.offset, 128);
    CHECK_EQ(b.capacity, 64);
    CHECK_EQ(b.state, MEMIF_CT_BUF_APP);
    CHECK_INT(memif_ct_pool_buffer(p, 62, &b), MEMIF_CT_OK);
    CHECK(b.addr == mem + 62 * 64);
    CHECK_EQ(b.state, MEMIF_CT_BUF_FREE);
    CHECK_INT(memif_ct_pool_buffer(p, 63, &b), MEMIF_CT_OK); /* first of the second segment */
    CHECK(b.addr == mem + 4096);
    CHECK_EQ(b.region, 5);
    CHECK_EQ(b.offset, 0);
    CHECK_INT(memif_ct_pool_buffer(p, 77, &b), MEMIF_CT_OK);
    CHECK(b.addr == mem + 4096 + 14 * 64);
    CHECK_INT(memif_ct_pool_buffer(p, 78, &b), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_pool_buffer(p, 0, NULL), MEMIF_CT_ERR_NULL);
    /* index_of: every buffer start, nothing else. */
    for (uint32_t i = 0; i < 78; i++) {
        uint32_t k = UINT32_MAX;
        REQUIRE(memif_ct_pool_buffer(p, i, &b) == MEMIF_CT_OK);
        CHECK_INT(memif_ct_pool_index_of(p, b.addr, &k), MEMIF_CT_OK);
        CHECK_EQ(k, i);
        CHECK_INT(memif_ct_pool_index_of(p, b.addr + 1, &k), MEMIF_CT_ERR_RANGE);
        CHECK_INT(memif_ct_pool_index_of(p, b.addr + 63, &k), MEMIF_CT_ERR_RANGE);
    }
    uint32_t k;
    CHECK_INT(memif_ct_pool_index_of(p, mem + 63 * 64, &k), MEMIF_CT_ERR_RANGE); /* the partial buffer */
    CHECK_INT(memif_ct_pool_index_of(p, mem + 4096 + 15 * 64, &k), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_pool_index_of(p, mem + sizeof(mem), &k), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_pool_index_of(p, NULL, &k), MEMIF_CT_ERR_NULL);

    /* Free, double free, out of range: the valid ones are freed, the call says ERR_STATE. */
    uint32_t one = 1;
    CHECK_INT(memif_ct_pool_free(p, &one, 1), MEMIF_CT_OK);
    check_counts(p, 76, 2, 0);
    CHECK_INT(memif_ct_pool_free(p, &one, 1), MEMIF_CT_ERR_STATE);
    check_counts(p, 76, 2, 0);
    uint32_t mixed[4] = {0, 0, 78, 2};
    CHECK_INT(memif_ct_pool_free(p, mixed, 4), MEMIF_CT_ERR_STATE);
    check_counts(p, 78, 0, 0);
    uint32_t free_one = 5; /* FREE, never allocated */
    CHECK_INT(memif_ct_pool_free(p, &free_one, 1), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_pool_free(p, NULL, 0), MEMIF_CT_OK);
    CHECK_INT(memif_ct_pool_free(p, NULL, 1), MEMIF_CT_ERR_NULL);
    /* LIFO: the last freed comes back first. */
    CHECK_EQ(memif_ct_pool_alloc(p, idx, 1), 1);
    CHECK_EQ(idx[0], 2);
    CHECK_INT(memif_ct_pool_free(p, idx, 1), MEMIF_CT_OK);
    /* Exhaustion. */
    CHECK_EQ(memif_ct_pool_alloc(p, idx, 100), 78);
    check_counts(p, 0, 78, 0);
    CHECK_EQ(memif_ct_pool_alloc(p, idx + 78, 1), 0);
    for (uint32_t i = 0; i < 78; i++)
        for (uint32_t j = 0; j < i; j++)
            if (idx[i] == idx[j])
                MT_FAIL("buffer %u handed out twice", idx[i]);
    CHECK_INT(memif_ct_pool_free(p, idx, 78), MEMIF_CT_OK);
    check_counts(p, 78, 0, 0);
    CHECK_EQ(memif_ct_pool_alloc(NULL, idx, 1), 0);
    free(p);
}

/* pool_write by either copy method (memif_ct_copy_method): lengths round the movsb threshold,
 * nothing past a length written, and data that overlaps the buffer it goes into (either side)
 * copied as memmove would. */
static void test_pool_write_copy_methods(void)
{
    enum { BS = 2048, NB = 4 };
    static uint8_t mem[NB * BS], ref[NB * BS];
    memif_ct_segment_t s[1] = {{mem, sizeof(mem), 0, 0, {0}}};
    memif_ct_pool_t *p = pool_new(s, 1, BS);
    REQUIRE(p);
    uint32_t idx[NB];
    REQUIRE(memif_ct_pool_alloc(p, idx, NB) == NB);
    memif_ct_buf_t b[NB];
    for (int i = 0; i < NB; i++)
        REQUIRE(memif_ct_pool_buffer(p, idx[i], &b[i]) == MEMIF_CT_OK);
    const int before = memif_ct_copy_method(MEMIF_CT_COPY_QUERY);
    const int methods[] = {MEMIF_CT_COPY_MEMCPY, MEMIF_CT_COPY_MOVSB};
    for (int mi = 0; mi < 2; mi++) {
        int rc = memif_ct_copy_method(methods[mi]);
        if (rc == MEMIF_CT_ERR_ARG && methods[mi] == MEMIF_CT_COPY_MOVSB)
            continue; /* not on this CPU or in this build (test_ring says which) */
        CHECK_INT(rc, methods[mi]);
        uint8_t data[512 + 513 + 1500 + 2048];
        for (size_t i = 0; i < sizeof(data); i++)
            data[i] = (uint8_t)(i * 7 + (size_t)mi);
        memset(mem, 0xEE, sizeof(mem));
        uint32_t len[NB] = {512, 513, 1500, 2048};
        CHECK_INT(memif_ct_pool_write(p, idx, NB, data, sizeof(data), len, 0), NB);
        size_t pos = 0;
        for (int i = 0; i < NB; i++) {
            CHECK_MEM(b[i].addr, data + pos, len[i]);
            if (len[i] < BS)
                CHECK_EQ(b[i].addr[len[i]], 0xEE);
            pos += len[i];
        }
        /* Overlap: data starting inside the target (after it) and before it (in the buffer below). */
        const long shifts[] = {100, -100, 1, -1};
        for (size_t k = 0; k < sizeof(shifts) / sizeof(shifts[0]); k++) {
            for (size_t i = 0; i < sizeof(mem); i++)
                mem[i] = (uint8_t)(i * 13 + k);
            int t = 0; /* the buffer at mem + 2 * BS: data either side of it lies in mem */
            while (t < NB - 1 && b[t].addr != mem + 2 * BS)
                t++;
            REQUIRE(b[t].addr == mem + 2 * BS);
            uint8_t *target = b[t].addr;
            const uint8_t *src = target + shifts[k];
            uint32_t n1 = 1500;
            memcpy(ref, mem, sizeof(mem));
            memmove(ref + (target - mem), ref + (src - mem), n1);
            CHECK_INT(memif_ct_pool_write(p, &idx[t], 1, src, n1, &n1, 0), 1);
            CHECK_MEM(mem, ref, sizeof(mem));
        }
    }
    CHECK_INT(memif_ct_copy_method(before), before);
    free(p);
}

/* pool_write: packed packets into APP buffers, across both segments; all or nothing. */
static void test_pool_write(void)
{
    static uint8_t mem[4096 + 1000];
    memset(mem, 0xEE, sizeof(mem));
    memif_ct_segment_t s[2] = {{mem, 4096 - 1, 64, 2, {0}}, {mem + 4096, 1000, 0, 5, {0}}};
    memif_ct_pool_t *p = pool_new(s, 2, 64);
    REQUIRE(p);
    uint32_t idx[78];
    REQUIRE(memif_ct_pool_alloc(p, idx, 78) == 78);
    uint8_t data[3 * 64];
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    uint32_t who[3] = {idx[0], idx[70], idx[5]}; /* 70: in the second segment */
    uint32_t len[3] = {64, 1, 63};
    CHECK_INT(memif_ct_pool_write(p, who, 3, data, sizeof(data), len, 0), 3);
    memif_ct_buf_t b;
    REQUIRE(memif_ct_pool_buffer(p, who[0], &b) == MEMIF_CT_OK);
    CHECK(memcmp(b.addr, data, 64) == 0);
    REQUIRE(memif_ct_pool_buffer(p, who[1], &b) == MEMIF_CT_OK);
    CHECK(b.addr >= mem + 4096 && b.addr[0] == 64 && b.addr[1] == 0xEE);
    REQUIRE(memif_ct_pool_buffer(p, who[2], &b) == MEMIF_CT_OK);
    CHECK(memcmp(b.addr, data + 65, 63) == 0 && b.addr[63] == 0xEE);
    /* Refusals change nothing. */
    uint8_t before[sizeof(mem)];
    memcpy(before, mem, sizeof(mem));
    uint32_t too_big[3] = {64, 65, 1};
    CHECK_INT(memif_ct_pool_write(p, who, 3, data, sizeof(data), too_big, 0), MEMIF_CT_ERR_ARG);
    uint32_t zero[3] = {1, 0, 1};
    CHECK_INT(memif_ct_pool_write(p, who, 3, data, sizeof(data), zero, 0), MEMIF_CT_ERR_ARG);
    uint32_t overrun[3] = {64, 64, 64};
    CHECK_INT(memif_ct_pool_write(p, who, 3, data, sizeof(data) - 1, overrun, 0), MEMIF_CT_ERR_ARG);
    uint32_t out_of_range[2] = {idx[1], 78};
    CHECK_INT(memif_ct_pool_write(p, out_of_range, 2, data, sizeof(data), len, 0), MEMIF_CT_ERR_STATE);
    REQUIRE(memif_ct_pool_free(p, &idx[1], 1) == MEMIF_CT_OK);
    uint32_t not_app[2] = {idx[2], idx[1]};
    CHECK_INT(memif_ct_pool_write(p, not_app, 2, data, sizeof(data), len, 0), MEMIF_CT_ERR_STATE);
    uint32_t capped[3] = {10, 11, 10};
    CHECK_INT(memif_ct_pool_write(p, who, 3, data, sizeof(data), capped, 10), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_pool_write(p, who, 3, data, sizeof(data), too_big, 1000), MEMIF_CT_ERR_ARG); /* never past the buffer */
    /* A count past the int return is refused before any index or length is read (a read past
     * these 3-entry arrays is what the ASan build of this test would catch). */
    CHECK_INT(memif_ct_pool_write(p, who, 0x80000000u, data, sizeof(data), len, 0), MEMIF_CT_ERR_ARG);
    CHECK(memcmp(before, mem, sizeof(mem)) == 0);
    CHECK_INT(memif_ct_pool_write(p, NULL, 0, NULL, 0, NULL, 0), 0);
    CHECK_INT(memif_ct_pool_write(p, who, 1, NULL, 64, len, 0), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_pool_write(NULL, who, 1, data, 64, len, 0), MEMIF_CT_ERR_NULL);
    free(p);
}

/* Buffer sizes at the edges of 64..65535: layout, index_of and exact counts. */
static void test_pool_buffer_sizes(void)
{
    const uint32_t sizes[] = {64, 65, 127, 128, 1000, 2048, 4095, 65534, 65535};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t bs = sizes[i];
        size_t size = (size_t)3 * bs + bs - 1;
        uint8_t *mem = malloc(size);
        REQUIRE(mem);
        memif_ct_segment_t s = {mem, size, 0x1000, 1, {0}};
        memif_ct_pool_t *p = pool_new(&s, 1, bs);
        REQUIRE(p);
        CHECK_EQ(memif_ct_pool_count(p), 3);
        memif_ct_buf_t b;
        CHECK_INT(memif_ct_pool_buffer(p, 2, &b), MEMIF_CT_OK);
        CHECK(b.addr == mem + 2 * (size_t)bs);
        CHECK_EQ(b.offset, 0x1000 + 2 * (uint64_t)bs);
        CHECK_EQ(b.capacity, bs);
        uint32_t k;
        CHECK_INT(memif_ct_pool_index_of(p, mem + 3 * (size_t)bs, &k), MEMIF_CT_ERR_RANGE);
        free(p);
        free(mem);
    }
}

/* ====================================================================================== */
/* pool queues                                                                             */

static void test_set_pool(void)
{
    zc_t z;
    ZC(&z, 3, 256, 256, 16);
    uint8_t out[4096];
    uint32_t lens[8];
    memif_ct_pkt_t pk[8];
    /* No pool yet: no traffic. */
    uint32_t one = 100;
    CHECK_INT(memif_ct_tx_burst(&z.ctx, out, 100, &one, 1), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_refill(&z.crx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_rx_burst(&z.crx, out, sizeof(out), lens, 8), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_rx_peek(&z.crx, pk, 8, NULL, 0), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, &one, &one, 1), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_queue_reclaim(&z.ctx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_queue_drop_pool(&z.ctx), MEMIF_CT_ERR_STATE);
    /* ring_init with NO_REGION names no buffer. */
    CHECK_EQ(z.m2s->desc[0].length, 0);
    /* Wrong calls. */
    CHECK_INT(memif_ct_queue_set_pool(&z.srx, z.ptx, z.tab_tx), MEMIF_CT_ERR_DIRECTION);
    CHECK_INT(memif_ct_queue_set_pool(&z.ctx, NULL, z.tab_tx), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_queue_set_pool(&z.ctx, z.ptx, NULL), MEMIF_CT_ERR_NULL);
    /* Buffers smaller than the queue's. */
    memif_ct_segment_t small = {z.arena, 64 * 16, 0, 1, {0}};
    memif_ct_pool_t *p64 = pool_new(&small, 1, 128);
    REQUIRE(p64);
    CHECK_INT(memif_ct_queue_set_pool(&z.ctx, p64, z.tab_tx), MEMIF_CT_ERR_ARG);
    free(p64);
    /* A segment where the queue's regions do not map it. */
    memif_ct_segment_t wrong[3] = {{z.arena + 256, 4096, 0, 1, {0}},  /* base and offset disagree */
                                   {z.arena, 4096, 0, 2, {0}},        /* no region 2 */
                                   {z.rings, 4096, 0, 0, {0}}};       /* past region 0's end */
    for (int i = 0; i < 3; i++) {
        memif_ct_pool_t *pw = pool_new(&wrong[i], 1, 256);
        REQUIRE(pw);
        CHECK_INT(memif_ct_queue_set_pool(&z.ctx, pw, z.tab_tx), MEMIF_CT_ERR_LAYOUT);
        free(pw);
    }
    /* M2S needs a buffer for every slot. */
    uint32_t idx[16];
    CHECK_EQ(memif_ct_pool_alloc(z.prx, idx, 9), 9);
    CHECK_INT(memif_ct_queue_set_pool(&z.crx, z.prx, z.tab_rx), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_pool_free(z.prx, idx, 9), MEMIF_CT_OK);
    CHECK_INT(memif_ct_queue_set_pool(&z.crx, z.prx, z.tab_rx), MEMIF_CT_OK);
    check_counts(z.prx, 8, 0, 8);
    for (uint32_t s = 0; s < z.N; s++) {
        memif_ct_buf_t b;
        REQUIRE(memif_ct_pool_buffer(z.prx, z.tab_rx[s], &b) == MEMIF_CT_OK);
        CHECK_EQ(b.state, MEMIF_CT_BUF_RING);
        CHECK_EQ(z.m2s->desc[s].region, 1);
        CHECK_EQ(z.m2s->desc[s].offset, b.offset);
        CHECK_EQ(z.m2s->desc[s].length, 256);
    }
    CHECK_INT(memif_ct_queue_set_pool(&z.crx, z.prx, z.tab_rx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_queue_set_pool(&z.ctx, z.ptx, z.tab_tx), MEMIF_CT_OK);
    check_counts(z.ptx, 16, 0, 0);
    CHECK_INT(memif_ct_queue_set_pool(&z.ctx, z.ptx, z.tab_tx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_refill(&z.crx), 8);
    CHECK_EQ(head_of(z.m2s), 8);
    CHECK_INT(memif_ct_queue_reclaim(&z.crx), MEMIF_CT_ERR_DIRECTION);
    CHECK_INT(memif_ct_tx_buffers(&z.crx, idx, idx, 0), MEMIF_CT_ERR_DIRECTION);
    zc_teardown(&z);

    /* A copy-mode queue that already has packets in flight cannot switch. */
    ZC(&z, 3, 256, 256, 16);
    memif_ct_queue_t cq;
    z.reg[0].size = z.rings_size; /* region 0 holds rings only: use region 1 for slot math */
    REQUIRE(memif_ct_queue_init(&cq, z.s2m, 3, CLIENT, S2M, z.reg, 2, 1, 0, 256) == MEMIF_CT_OK);
    CHECK_INT(memif_ct_tx_burst(&cq, out, 100, &one, 1), 1);
    CHECK_INT(memif_ct_queue_set_pool(&cq, z.ptx, z.tab_tx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), lens, 8), 1);
    CHECK_INT(memif_ct_queue_set_pool(&cq, z.ptx, z.tab_tx), MEMIF_CT_OK); /* nothing in flight now */
    zc_teardown(&z);
}

/* Client TX with a pool: packets and chains round trip; pool exhaustion is no_space, never a
 * partial chain; reclaim is exact. */
static void test_pool_tx_burst(void)
{
    zc_t z;
    ZCP(&z, 4, 128, 256, 10);
    uint8_t data[4096], out[8192];
    uint32_t lens[16], olens[16];
    /* 3 packets: 1, 3 (chain) and 2 (chain) segments of 128 bytes. */
    lens[0] = 100;
    lens[1] = 300;
    lens[2] = 256;
    fill(data, 656, 1);
    CHECK_INT(memif_ct_tx_burst(&z.ctx, data, 656, lens, 3), 3);
    check_counts(z.ptx, 4, 0, 6);
    CHECK_EQ(head_of(z.s2m), 6);
    for (uint16_t s = 0; s < 6; s++) {
        memif_ct_buf_t b;
        REQUIRE(memif_ct_pool_buffer(z.ptx, z.tab_tx[s], &b) == MEMIF_CT_OK);
        CHECK_EQ(z.s2m->desc[s].region, 1);
        CHECK_EQ(z.s2m->desc[s].offset, b.offset);
        CHECK_EQ(b.state, MEMIF_CT_BUF_RING);
    }
    CHECK_EQ(z.s2m->desc[1].flags, NEXT);
    CHECK_EQ(z.s2m->desc[3].flags, 0);
    CHECK_EQ(z.s2m->desc[3].length, 300 - 256);
    /* 5 segments wanted, 4 buffers left: nothing of it is published. */
    lens[0] = 600;
    fill(data, 600, 2);
    CHECK_INT(memif_ct_tx_burst(&z.ctx, data, 600, lens, 1), 0);
    CHECK_EQ(stats_of(&z.ctx).no_space, 1);
    CHECK_EQ(head_of(z.s2m), 6);
    check_counts(z.ptx, 4, 0, 6);
    /* The server reads all: chains reassembled from scattered pool buffers. */
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 16), 3);
    CHECK_EQ(olens[0], 100);
    CHECK_EQ(olens[1], 300);
    CHECK_EQ(olens[2], 256);
    fill(data, 656, 1);
    CHECK_MEM(out, data, 656);
    /* Released slots come back at the next TX call (or reclaim). */
    check_counts(z.ptx, 4, 0, 6);
    CHECK_INT(memif_ct_queue_reclaim(&z.ctx), 6);
    check_counts(z.ptx, 10, 0, 0);
    CHECK_INT(memif_ct_queue_reclaim(&z.ctx), 0);
    for (uint32_t s = 0; s < z.N; s++)
        CHECK_EQ(z.tab_tx[s], UINT32_MAX);
    /* Many rounds across the u16 wrap: after each, free + ring == count, ring == in flight. */
    uint64_t sent = 0;
    for (uint32_t round = 0; round < 5000; round++) {
        uint32_t n = 1 + round % 4;
        size_t total = 0;
        for (uint32_t i = 0; i < n; i++) {
            lens[i] = 1 + (round * 37 + i * 101) % 300;
            total += lens[i];
        }
        fill(data, total, round);
        int rc = memif_ct_tx_burst(&z.ctx, data, total, lens, n);
        REQUIRE(rc >= 0);
        sent += (uint64_t)rc;
        uint32_t inflight = (uint16_t)(head_of(z.s2m) - tail_of(z.s2m));
        uint32_t f, a, r;
        memif_ct_pool_counts(z.ptx, &f, &a, &r);
        CHECK_EQ(r, inflight);
        CHECK_EQ(a, 0);
        CHECK_EQ(f + r, 10);
        if (round % 3 == 2) {
            int got = memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 16);
            REQUIRE(got >= 0);
        }
    }
    while (memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 16) > 0)
        ;
    memif_ct_queue_reclaim(&z.ctx);
    check_counts(z.ptx, 10, 0, 0);
    CHECK_EQ(stats_of(&z.srx).packets, sent + 3);
    CHECK_EQ(stats_of(&z.srx).bad_desc, 0);
    CHECK(sent > 1000);
    zc_teardown(&z);
}

static void test_tx_buffers(void)
{
    zc_t z;
    ZCP(&z, 2, 128, 512, 8);
    uint32_t idx[8], lens[8], olens[8];
    uint8_t out[4096];
    CHECK_EQ(memif_ct_pool_alloc(z.ptx, idx, 6), 6);
    for (uint32_t i = 0; i < 6; i++) {
        memif_ct_buf_t b;
        REQUIRE(memif_ct_pool_buffer(z.ptx, idx[i], &b) == MEMIF_CT_OK);
        lens[i] = 1 + i * 100;
        fill(b.addr, lens[i], 10 + i);
    }
    /* Checked before anything is published. */
    uint32_t bad_len[2] = {10, 513};
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx, bad_len, 2), MEMIF_CT_ERR_ARG);
    bad_len[1] = 0;
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx, bad_len, 2), MEMIF_CT_ERR_ARG);
    uint32_t rep[3] = {idx[0], idx[1], idx[0]};
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, rep, lens, 3), MEMIF_CT_ERR_STATE);
    uint32_t not_app[2] = {idx[0], 7}; /* 7 is FREE */
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, not_app, lens, 2), MEMIF_CT_ERR_STATE);
    uint32_t out_of_range[1] = {8};
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, out_of_range, lens, 1), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, NULL, lens, 1), MEMIF_CT_ERR_NULL);
    check_counts(z.ptx, 2, 6, 0);
    CHECK_EQ(head_of(z.s2m), 0);
    /* Ring of 4: 4 published, 2 stay the application's. */
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx, lens, 6), 4);
    check_counts(z.ptx, 2, 2, 4);
    CHECK_EQ(stats_of(&z.ctx).no_space, 1);
    memif_ct_buf_t b;
    REQUIRE(memif_ct_pool_buffer(z.ptx, idx[4], &b) == MEMIF_CT_OK);
    CHECK_EQ(b.state, MEMIF_CT_BUF_APP);
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 8), 4);
    size_t pos = 0;
    for (uint32_t i = 0; i < 4; i++) {
        CHECK_EQ(olens[i], lens[i]);
        CHECK(filled(out + pos, lens[i], 10 + i));
        pos += lens[i];
    }
    /* The rest goes once the server released: reclaim first. */
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx + 4, lens + 4, 2), 2);
    check_counts(z.ptx, 6, 0, 2);
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 8), 2);
    CHECK(filled(out, lens[4], 14));
    CHECK_INT(memif_ct_queue_reclaim(&z.ctx), 2);
    check_counts(z.ptx, 8, 0, 0);
    /* A buffer published is RING: freeing it is a double free. */
    CHECK_INT(memif_ct_pool_free(z.ptx, idx, 1), MEMIF_CT_ERR_STATE);
    /* tx_alloc: reclaim and alloc in one call; the released buffers are among those it hands out. */
    uint32_t a[8], b8[8];
    CHECK_INT(memif_ct_tx_alloc(&z.ctx, a, 6), 6);
    check_counts(z.ptx, 2, 6, 0);
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, a, lens, 4), 4);
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 8), 4);
    check_counts(z.ptx, 2, 2, 4);
    CHECK_INT(memif_ct_tx_alloc(&z.ctx, b8, 8), 6); /* 4 released + 2 free; 8 asked */
    check_counts(z.ptx, 0, 8, 0);
    CHECK_INT(memif_ct_tx_alloc(&z.ctx, b8, 1), 0); /* none left */
    CHECK_INT(memif_ct_tx_alloc(&z.ctx, NULL, 1), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_tx_alloc(&z.ctx, NULL, 0), 0);
    CHECK_INT(memif_ct_tx_alloc(NULL, b8, 1), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_tx_alloc(&z.crx, b8, 1), MEMIF_CT_ERR_DIRECTION);
    CHECK_INT(memif_ct_pool_free(z.ptx, a + 4, 2), MEMIF_CT_OK);
    CHECK_INT(memif_ct_pool_free(z.ptx, b8, 6), MEMIF_CT_OK);
    check_counts(z.ptx, 8, 0, 0);
    zc_teardown(&z);
}

/* A client TX pool of two segments, the second below the first in the region (so an index is no
 * offset / size): tx_burst (chains too) and tx_buffers, through the pool cursor's search branch,
 * put every buffer where pool_buffer says, and the server reads every byte back. */
static void test_pool_two_segments(void)
{
    zc_t z;
    ZC(&z, 4, 128, 256, 8);
    memif_ct_segment_t s[2] = {{z.arena + 4 * 256, 4 * 256, 4 * 256, 1, {0}}, {z.arena, 4 * 256, 0, 1, {0}}};
    memif_ct_pool_t *p = pool_new(s, 2, 256);
    REQUIRE(p != NULL);
    REQUIRE(memif_ct_queue_set_pool(&z.ctx, p, z.tab_tx) == MEMIF_CT_OK);
    uint8_t data[2048], out[4096];
    uint32_t lens[8] = {100, 300, 50, 128, 1}, olens[8];
    fill(data, 579, 3);
    CHECK_INT(memif_ct_tx_burst(&z.ctx, data, 579, lens, 5), 5); /* 1 + 3 + 1 + 1 + 1 slots */
    CHECK_EQ(head_of(z.s2m), 7);
    uint32_t low = 0, high = 0;
    for (uint16_t slot = 0; slot < 7; slot++) {
        memif_ct_buf_t b;
        REQUIRE(memif_ct_pool_buffer(p, z.tab_tx[slot], &b) == MEMIF_CT_OK);
        CHECK_EQ(z.s2m->desc[slot].region, 1);
        CHECK_EQ(z.s2m->desc[slot].offset, b.offset);
        CHECK(b.addr == z.arena + b.offset);
        low += b.offset < 1024;
        high += b.offset >= 1024;
    }
    CHECK(low > 0 && high > 0); /* both segments were used */
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 8), 5);
    CHECK_MEM(out, data, 579);
    /* tx_alloc takes all 8 back; each is filled through pool_buffer and sent by index. */
    uint32_t idx[8];
    CHECK_INT(memif_ct_tx_alloc(&z.ctx, idx, 8), 8);
    for (uint32_t i = 0; i < 8; i++) {
        memif_ct_buf_t b;
        REQUIRE(memif_ct_pool_buffer(p, idx[i], &b) == MEMIF_CT_OK);
        lens[i] = 20 + i;
        fill(b.addr, lens[i], 40 + i);
    }
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx, lens, 8), 8);
    for (uint16_t i = 0; i < 8; i++) {
        memif_ct_buf_t b;
        REQUIRE(memif_ct_pool_buffer(p, idx[i], &b) == MEMIF_CT_OK);
        CHECK_EQ(z.s2m->desc[(7 + i) & 15].offset, b.offset);
    }
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 8), 8);
    size_t pos = 0;
    for (uint32_t i = 0; i < 8; i++) {
        CHECK_EQ(olens[i], 20 + i);
        CHECK(filled(out + pos, olens[i], 40 + i));
        pos += olens[i];
    }
    CHECK_INT(memif_ct_queue_reclaim(&z.ctx), 8);
    check_counts(p, 8, 0, 0);
    free(p);
    zc_teardown(&z);
}

/* drop_pool after a "disconnect" mid-traffic gives every buffer back, exactly once. */
static void test_drop_pool(void)
{
    zc_t z;
    ZCP(&z, 3, 256, 256, 12);
    uint8_t data[2048];
    uint32_t lens[4] = {700, 10, 256, 1};
    fill(data, 967, 3);
    CHECK_INT(memif_ct_tx_burst(&z.ctx, data, 967, lens, 4), 4);
    uint32_t idx[4];
    CHECK_EQ(memif_ct_pool_alloc(z.ptx, idx, 2), 2);
    uint32_t blens[1] = {5};
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx, blens, 1), 1);
    check_counts(z.ptx, 12 - 6 - 2, 1, 7);
    /* The server read a part and released it; then the peer is gone. */
    uint8_t out[4096];
    uint32_t olens[4];
    CHECK_INT(memif_ct_rx_burst(&z.srx, out, sizeof(out), olens, 1), 1);
    CHECK_INT(memif_ct_queue_drop_pool(&z.ctx), 7); /* the 3 released but not reclaimed ones too */
    check_counts(z.ptx, 11, 1, 0);
    CHECK_INT(memif_ct_queue_drop_pool(&z.ctx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_tx_burst(&z.ctx, data, 967, lens, 4), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_tx_buffers(&z.ctx, idx + 1, blens, 1), MEMIF_CT_ERR_STATE);
    memif_ct_pkt_t one = {data, 64, 1, 0};
    CHECK_INT(memif_ct_tx_pkts(&z.ctx, &one, 1, 0), MEMIF_CT_ERR_STATE); /* the dropped pool untouched */
    check_counts(z.ptx, 11, 1, 0);
    CHECK_INT(memif_ct_queue_set_pool(&z.ctx, z.ptx, z.tab_tx), MEMIF_CT_ERR_STATE);
    /* M2S: every slot's buffer, also those the server filled and those peeked. */
    CHECK_INT(memif_ct_tx_burst(&z.stx, data, 967, lens, 4), 4);
    memif_ct_pkt_t pk[4];
    CHECK_INT(memif_ct_rx_peek(&z.crx, pk, 2, out, sizeof(out)), 2);
    CHECK_INT(memif_ct_queue_drop_pool(&z.crx), 8);
    check_counts(z.prx, 12, 0, 0);
    CHECK_INT(memif_ct_rx_burst(&z.crx, out, sizeof(out), olens, 4), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_refill(&z.crx), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_pool_free(z.ptx, idx + 1, 1), MEMIF_CT_OK);
    check_counts(z.ptx, 12, 0, 0);
    zc_teardown(&z);
}

/* A hostile server publishing descriptors outside the slot's own pool buffer on a pool client's
 * RX: caught, counted in bad_desc, never read (the arena's bytes outside are ASan-visible). */
static void test_pool_client_rx_hostile(void)
{
    zc_t z;
    ZCP(&z, 3, 256, 512, 8);
    uint8_t out[8192];
    uint32_t olens[8];
    memif_ct_pkt_t pk[8];
    struct {
        uint16_t region;
        uint32_t length;
        int64_t offset_delta; /* from the slot's own buffer */
    } cases[] = {
        {1, 100, 512},        /* another pool buffer (the next one) */
        {1, 100, 1},          /* inside its buffer, not at its start */
        {1, 257, 0},          /* more than the queue's buffer size */
        {1, 0, 0},            /* empty */
        {0, 100, 0},          /* the rings region */
        {2, 100, 0},          /* no such region */
        {1, 100, -512 * 8},   /* the TX pool's segment */
    };
    for (int peek = 0; peek < 2; peek++) {
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
            uint16_t t = tail_of(z.m2s);
            uint16_t slot = t & (z.N - 1);
            memif_ct_desc_t *d = &z.m2s->desc[slot];
            memif_ct_buf_t own;
            REQUIRE(memif_ct_pool_buffer(z.prx, z.tab_rx[slot], &own) == MEMIF_CT_OK);
            d->region = cases[c].region;
            d->length = cases[c].length;
            d->offset = (uint32_t)((int64_t)own.offset + cases[c].offset_delta);
            d->flags = 0;
            atomic_store(&z.m2s->tail, (uint16_t)(t + 1));
            uint64_t bad = stats_of(&z.crx).bad_desc;
            if (peek) {
                CHECK_INT(memif_ct_rx_peek(&z.crx, pk, 8, out, sizeof(out)), 0);
                CHECK_INT(memif_ct_rx_release(&z.crx), 1);
            } else {
                CHECK_INT(memif_ct_rx_burst(&z.crx, out, sizeof(out), olens, 8), 0);
            }
            CHECK_EQ(stats_of(&z.crx).bad_desc, bad + 1);
            /* Re-posted with its own buffer. */
            CHECK_EQ(z.m2s->desc[slot].offset, own.offset);
            CHECK_EQ(z.m2s->desc[slot].length, 256);
        }
    }
    check_counts(z.prx, 0, 0, 8);
    zc_teardown(&z);
}

/* Server tx_reserve/commit, with bad posted descriptors in between. */
static void test_reserve_commit(void)
{
    zc_t z;
    ZCP(&z, 3, 256, 256, 8);
    memif_ct_buf_t r[8];
    uint32_t lens[8], olens[8];
    uint8_t out[4096];
    /* The client spoils two posted slots (2 and 3) and one later (6). */
    z.m2s->desc[2].offset = (uint32_t)z.arena_size;
    z.m2s->desc[3].length = 0;
    z.m2s->desc[6].region = 9;
    CHECK_INT(memif_ct_tx_reserve(&z.crx, r, 1), MEMIF_CT_ERR_DIRECTION);
    CHECK_INT(memif_ct_tx_reserve(&z.stx, NULL, 1), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 3), 3);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 3);
    CHECK_EQ(stats_of(&z.stx).bad_desc, 2);
    CHECK_EQ(memif_ct_queue_free(&z.stx), 3); /* 8 posted, 5 slots reserved */
    for (int i = 0; i < 3; i++) {
        uint16_t slot = i < 2 ? (uint16_t)i : 4;
        memif_ct_buf_t own;
        REQUIRE(memif_ct_pool_buffer(z.prx, z.tab_rx[slot], &own) == MEMIF_CT_OK);
        CHECK(r[i].addr == own.addr);
        CHECK_EQ(r[i].capacity, 256);
        CHECK_EQ(r[i].region, 1);
        CHECK_EQ(r[i].offset, own.offset);
        fill(r[i].addr, 50 + (uint32_t)i, 20 + (uint32_t)i);
    }
    /* Copy-mode TX while reserved is refused. */
    uint32_t one = 10;
    CHECK_INT(memif_ct_tx_burst(&z.stx, out, 10, &one, 1), MEMIF_CT_ERR_STATE);
    /* Reserve more, after those: slot 5, then 6 is bad, then 7. */
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r + 3, 8), 2);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 5);
    CHECK_EQ(stats_of(&z.stx).bad_desc, 3);
    fill(r[3].addr, 53, 23);
    fill(r[4].addr, 54, 24);
    /* Give the last two back: a later reserve offers the very same buffers again. */
    CHECK_INT(memif_ct_tx_unreserve(&z.stx, 6), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_tx_unreserve(&z.crx, 1), MEMIF_CT_ERR_DIRECTION);
    CHECK_INT(memif_ct_tx_unreserve(&z.stx, 2), MEMIF_CT_OK);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 3);
    memif_ct_buf_t again[8];
    CHECK_INT(memif_ct_tx_reserve(&z.stx, again, 8), 2);
    CHECK(again[0].addr == r[3].addr && again[1].addr == r[4].addr);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 5);
    /* Bad lengths: nothing published. */
    lens[0] = 50;
    lens[1] = 257;
    CHECK_INT(memif_ct_tx_commit(&z.stx, lens, 2), MEMIF_CT_ERR_ARG);
    lens[1] = 0;
    CHECK_INT(memif_ct_tx_commit(&z.stx, lens, 2), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_tx_commit(&z.stx, lens, 6), MEMIF_CT_ERR_ARG);
    CHECK_EQ(tail_of(z.m2s), 0);
    /* Commit the first two: slots 0-1 (then 2 and 3, bad, go back with them). */
    lens[0] = 50;
    lens[1] = 51;
    CHECK_INT(memif_ct_tx_commit(&z.stx, lens, 2), 2);
    CHECK_EQ(tail_of(z.m2s), 4);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 3);
    CHECK_INT(memif_ct_rx_burst(&z.crx, out, sizeof(out), olens, 8), 2);
    CHECK_EQ(olens[0], 50);
    CHECK_EQ(olens[1], 51);
    CHECK(filled(out, 50, 20));
    CHECK(filled(out + 50, 51, 21));
    CHECK_EQ(stats_of(&z.crx).bad_desc, 2); /* the handed-back empty slots */
    /* The rest. */
    lens[0] = 52;
    lens[1] = 53;
    lens[2] = 54;
    CHECK_INT(memif_ct_tx_commit(&z.stx, lens, 3), 3);
    CHECK_EQ(tail_of(z.m2s), 8);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 0);
    CHECK_INT(memif_ct_rx_burst(&z.crx, out, sizeof(out), olens, 8), 3);
    CHECK(filled(out, 52, 22));
    CHECK(filled(out + 52, 53, 23));
    CHECK(filled(out + 105, 54, 24));
    CHECK_EQ(stats_of(&z.stx).packets, 5);
    CHECK_INT(memif_ct_tx_commit(&z.stx, lens, 0), 0);
    /* Copy-mode TX works again. */
    CHECK_INT(memif_ct_tx_burst(&z.stx, out, 10, &one, 1), 1);
    /* A client moving head back over reservations: counted, nothing reserved. */
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 2), 2);
    uint64_t bad_ring = stats_of(&z.stx).bad_ring;
    atomic_store(&z.m2s->head, (uint16_t)(tail_of(z.m2s) + 1));
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 2), 0);
    CHECK_EQ(stats_of(&z.stx).bad_ring, bad_ring + 1);
    zc_teardown(&z);
}

/* ====================================================================================== */
/* rx_peek                                                                                 */

/* Copy-mode fixture for peek: one region, rings then slot-math buffers (contiguous slots). */
typedef struct {
    memif_ct_layout_t lay;
    uint8_t *mem;
    memif_ct_region_t reg[1];
    memif_ct_ring_t *s2m, *m2s;
    memif_ct_queue_t ctx, srx, crx, stx;
} cm_t;

static int cm_setup(cm_t *c, uint32_t log2, uint32_t bsize)
{
    memset(c, 0, sizeof(*c));
    if (memif_ct_layout_init(&c->lay, 1, 1, log2, bsize))
        return -1;
    c->mem = aligned_alloc(64, (size_t)(c->lay.total_size + 63) / 64 * 64);
    if (!c->mem)
        return -1;
    c->reg[0] = (memif_ct_region_t){c->mem, c->lay.total_size};
    c->s2m = (memif_ct_ring_t *)(c->mem + memif_ct_layout_ring_offset(&c->lay, S2M, 0));
    c->m2s = (memif_ct_ring_t *)(c->mem + memif_ct_layout_ring_offset(&c->lay, M2S, 0));
    uint64_t b0 = memif_ct_layout_buffer_offset(&c->lay, S2M, 0), b1 = memif_ct_layout_buffer_offset(&c->lay, M2S, 0);
    if (memif_ct_ring_init(c->s2m, log2, 0, b0, bsize) || memif_ct_ring_init(c->m2s, log2, 0, b1, bsize) ||
        memif_ct_queue_init(&c->ctx, c->s2m, log2, CLIENT, S2M, c->reg, 1, 0, b0, bsize) ||
        memif_ct_queue_init(&c->srx, c->s2m, log2, SERVER, S2M, c->reg, 1, 0, 0, 0) ||
        memif_ct_queue_init(&c->crx, c->m2s, log2, CLIENT, M2S, c->reg, 1, 0, b1, bsize) ||
        memif_ct_queue_init(&c->stx, c->m2s, log2, SERVER, M2S, c->reg, 1, 0, 0, 0))
        return -1;
    return memif_ct_refill(&c->crx) == (int)(1u << log2) ? 0 : -1;
}

#define CM(c, log2, bsize) REQUIRE(cm_setup((c), (log2), (bsize)) == 0)

/* Single slots and contiguous chains in place, scattered ones (across the ring's end) in scratch;
 * release semantics per role; rx_burst refused while peeked. */
static void test_peek_copy_mode(int m2s)
{
    cm_t c;
    CM(&c, 3, 128);
    memif_ct_queue_t *txq = m2s ? &c.stx : &c.ctx, *rxq = m2s ? &c.crx : &c.srx;
    memif_ct_ring_t *ring = m2s ? c.m2s : c.s2m;
    uint8_t data[2048], scratch[1024], out[2048];
    uint32_t lens[8], olens[8];
    memif_ct_pkt_t pk[8];
    /* Slots 0, 1-3 (chain of 3), 4: in place. */
    lens[0] = 100;
    lens[1] = 300;
    lens[2] = 128;
    fill(data, 528, 5);
    CHECK_INT(memif_ct_tx_burst(txq, data, 528, lens, 3), 3);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 1, scratch, sizeof(scratch)), 1);
    CHECK_EQ(memif_ct_rx_peeked(rxq), 1);
    CHECK_EQ(pk[0].length, 100);
    CHECK_EQ(pk[0].slots, 1);
    CHECK_EQ(pk[0].scratch, 0);
    CHECK(pk[0].addr == c.mem + ring->desc[0].offset);
    CHECK_INT(memif_ct_rx_burst(rxq, out, sizeof(out), olens, 8), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_rx_burst_ex(rxq, out, sizeof(out), olens, 8, 0), MEMIF_CT_ERR_STATE);
    CHECK_INT(memif_ct_rx_peek(rxq, pk + 1, 8, scratch, sizeof(scratch)), 2); /* after the first */
    CHECK_EQ(memif_ct_rx_peeked(rxq), 5);
    CHECK_EQ(pk[1].length, 300);
    CHECK_EQ(pk[1].slots, 3);
    CHECK_EQ(memif_ct_pkts_bytes(pk, 2), 400u);
    CHECK_EQ(memif_ct_pkts_bytes(pk, 1), 100u);
    CHECK_EQ(memif_ct_pkts_bytes(NULL, 2), 0u);
    CHECK_EQ(pk[1].scratch, 0);
    CHECK(pk[1].addr == c.mem + ring->desc[1].offset);
    CHECK_EQ(pk[2].scratch, 0);
    CHECK_MEM(pk[0].addr, data, 100);
    CHECK_MEM(pk[1].addr, data + 100, 300);
    CHECK_MEM(pk[2].addr, data + 400, 128);
    CHECK_EQ(memif_ct_queue_pending(rxq), 0);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, scratch, sizeof(scratch)), 0);
    /* Nothing released yet: the peer sees the slots as still in use. */
    if (m2s)
        CHECK_EQ(head_of(ring), 8);
    else
        CHECK_EQ(tail_of(ring), 0);
    CHECK_INT(memif_ct_rx_release(rxq), 5);
    CHECK_EQ(memif_ct_rx_peeked(rxq), 0);
    CHECK_INT(memif_ct_rx_release(rxq), 0);
    if (m2s) {
        CHECK_EQ(head_of(ring), 13); /* refilled */
    } else {
        CHECK_EQ(tail_of(ring), 5);
        CHECK_EQ(ring->desc[0].length, 0); /* consumed mark */
        CHECK_EQ(ring->desc[4].length, 0);
    }
    /* A chain over the ring's end (slots 5, 6, 7, 0, 1) is scattered: assembled in scratch. */
    lens[0] = 600;
    fill(data, 600, 6);
    CHECK_INT(memif_ct_tx_burst(txq, data, 600, lens, 1), 1);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, scratch, 599), 0); /* could never fit: dropped */
    CHECK_EQ(stats_of(rxq).drops, 1);
    CHECK_EQ(memif_ct_rx_peeked(rxq), 5);
    CHECK_INT(memif_ct_rx_release(rxq), 5);
    lens[0] = 600; /* slots 2..6: contiguous */
    lens[1] = 10;  /* slot 7 */
    CHECK_INT(memif_ct_tx_burst(txq, data, 610, lens, 2), 2);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, scratch, 300), 2);
    CHECK_EQ(pk[0].scratch, 0);
    CHECK_EQ(pk[0].length, 600);
    CHECK_EQ(pk[0].slots, 5);
    CHECK_MEM(pk[0].addr, data, 600);
    CHECK_EQ(pk[1].scratch, 0);
    CHECK_INT(memif_ct_rx_release(rxq), 6);
    lens[0] = 600; /* slots 0..4 */
    lens[1] = 10;  /* 5 */
    lens[2] = 10;  /* 6 */
    CHECK_INT(memif_ct_tx_burst(txq, data, 620, lens, 3), 3);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, NULL, 0), 3);
    CHECK_INT(memif_ct_rx_release(rxq), 7);
    lens[0] = 300; /* slots 7, 0, 1: scattered */
    lens[1] = 5;   /* 2 */
    fill(data, 305, 7);
    CHECK_INT(memif_ct_tx_burst(txq, data, 305, lens, 2), 2);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, NULL, 0), 1); /* no scratch: could never fit, dropped */
    CHECK_EQ(stats_of(rxq).drops, 2);
    CHECK_EQ(pk[0].length, 5);
    CHECK_INT(memif_ct_rx_release(rxq), 4);
    CHECK_INT(memif_ct_tx_burst(txq, data, 305, lens, 2), 2); /* 300: slots 3..5; 5: 6 */
    lens[0] = 200; /* slots 7, 0: scattered */
    CHECK_INT(memif_ct_tx_burst(txq, data, 200, lens, 1), 1);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, scratch, 200), 3);
    CHECK_EQ(pk[0].scratch, 0);
    CHECK_EQ(pk[2].scratch, 1);
    CHECK(pk[2].addr == scratch);
    CHECK_EQ(pk[2].length, 200);
    CHECK_EQ(pk[2].slots, 2);
    CHECK_MEM(pk[2].addr, data, 200);
    CHECK_INT(memif_ct_rx_release(rxq), 6);
    memif_ct_stats_t st = stats_of(rxq);
    CHECK_EQ(st.bad_desc + st.bad_chain + st.bad_ring, 0);
    CHECK_INT(memif_ct_rx_peek(txq, pk, 8, NULL, 0), MEMIF_CT_ERR_DIRECTION);
    CHECK_INT(memif_ct_rx_peek(rxq, NULL, 8, NULL, 0), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_rx_peek(rxq, pk, 8, NULL, 1), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_rx_release(txq), MEMIF_CT_ERR_DIRECTION);
    free(c.mem);
}

/* Bad chains are counted once, across peeks; scattered pool buffers on a pool client's RX. */
static void test_peek_hostile_and_pool(void)
{
    cm_t c;
    CM(&c, 3, 128);
    memif_ct_ring_t *r = c.s2m;
    uint64_t b0 = memif_ct_layout_buffer_offset(&c.lay, S2M, 0);
    memif_ct_pkt_t pk[8];
    uint8_t scratch[1024];
    /* A chain with a bad middle segment and NEXT on the last published slot: waits, then is
     * dropped once its end comes; bad_desc and bad_chain counted once. */
    for (uint16_t s = 0; s < 3; s++) {
        r->desc[s] = (memif_ct_desc_t){NEXT, 0, 128, (uint32_t)(b0 + s * 128u), 0};
    }
    r->desc[1].offset = (uint32_t)c.lay.total_size; /* outside the region */
    atomic_store(&r->head, 3);
    for (int i = 0; i < 3; i++)
        CHECK_INT(memif_ct_rx_peek(&c.srx, pk, 8, scratch, sizeof(scratch)), 0);
    CHECK_EQ(memif_ct_rx_peeked(&c.srx), 0);
    CHECK_EQ(stats_of(&c.srx).bad_desc, 0);
    r->desc[3] = (memif_ct_desc_t){0, 0, 5, (uint32_t)(b0 + 3 * 128u), 0};
    r->desc[4] = (memif_ct_desc_t){0, 0, 7, (uint32_t)(b0 + 4 * 128u), 0};
    atomic_store(&r->head, 5);
    CHECK_INT(memif_ct_rx_peek(&c.srx, pk, 8, scratch, sizeof(scratch)), 1);
    CHECK_EQ(pk[0].length, 7);
    CHECK_EQ(memif_ct_rx_peeked(&c.srx), 5);
    memif_ct_stats_t s = stats_of(&c.srx);
    CHECK_EQ(s.bad_desc, 1);
    CHECK_EQ(s.bad_chain, 1);
    CHECK_EQ(s.drops, 1);
    CHECK_EQ(s.packets, 1);
    /* Head moved back over the peeked slots: counted, nothing adopted until release. */
    atomic_store(&r->head, 2);
    CHECK_INT(memif_ct_rx_peek(&c.srx, pk, 8, scratch, sizeof(scratch)), 0);
    CHECK_EQ(stats_of(&c.srx).bad_ring, 1);
    CHECK_EQ(tail_of(r), 0);
    CHECK_INT(memif_ct_rx_release(&c.srx), 5);
    CHECK_EQ(tail_of(r), 5);
    free(c.mem);

    /* Pool client RX: a chain over LIFO-ordered pool buffers is scattered. */
    zc_t z;
    ZC(&z, 2, 128, 128, 8);
    uint32_t idx[8];
    /* Take 4 and give them back in reverse so slots get buffers 3, 2, 1, 0... */
    CHECK_EQ(memif_ct_pool_alloc(z.prx, idx, 4), 4);
    CHECK_INT(memif_ct_pool_free(z.prx, idx, 4), MEMIF_CT_OK);
    REQUIRE(zc_pools(&z) == 0);
    CHECK(z.tab_rx[0] == 3 && z.tab_rx[1] == 2);
    uint8_t data[512];
    uint32_t lens[2] = {256, 100};
    fill(data, 356, 9);
    CHECK_INT(memif_ct_tx_burst(&z.stx, data, 356, lens, 2), 2);
    CHECK_INT(memif_ct_rx_peek(&z.crx, pk, 8, scratch, sizeof(scratch)), 2);
    CHECK_EQ(pk[0].scratch, 1);
    CHECK_MEM(pk[0].addr, data, 256);
    CHECK_EQ(pk[1].scratch, 0);
    CHECK_MEM(pk[1].addr, data + 256, 100);
    CHECK_INT(memif_ct_rx_release(&z.crx), 3);
    check_counts(z.prx, 4, 0, 4);
    /* Two scattered chains, scratch for one at a time: the second ends the call, comes next. */
    lens[0] = lens[1] = 256;
    fill(data, 512, 10);
    CHECK_INT(memif_ct_tx_burst(&z.stx, data, 512, lens, 2), 2);
    CHECK_INT(memif_ct_rx_peek(&z.crx, pk, 8, scratch, 300), 1);
    CHECK_EQ(memif_ct_rx_peeked(&z.crx), 2);
    CHECK_MEM(pk[0].addr, data, 256);
    CHECK_INT(memif_ct_rx_peek(&z.crx, pk + 1, 8, scratch + 300, 300), 1);
    CHECK_MEM(pk[1].addr, data + 256, 256);
    CHECK(pk[1].addr == scratch + 300);
    CHECK_INT(memif_ct_rx_release(&z.crx), 4);
    CHECK_EQ(stats_of(&z.crx).drops, 0);
    zc_teardown(&z);
}

/* Round trips through pool queues for buffer sizes at the edges of 64..65535. */
static void test_pool_round_trip_sizes(void)
{
    const uint32_t sizes[] = {64, 65, 1023, 2048, 65535};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t bs = sizes[i];
        zc_t z;
        ZCP(&z, 2, bs, bs, 4);
        uint32_t lens[3] = {1, bs, bs + 1};
        size_t total = 2 + 2 * (size_t)bs;
        uint8_t *data = malloc(total), *out = malloc(total), scratch[64];
        REQUIRE(data && out);
        fill(data, total, bs);
        uint32_t olens[3];
        CHECK_INT(memif_ct_tx_burst(&z.ctx, data, total, lens, 3), 3);
        CHECK_INT(memif_ct_rx_burst(&z.srx, out, total, olens, 3), 3);
        CHECK_MEM(out, data, total);
        CHECK_INT(memif_ct_queue_reclaim(&z.ctx), 4);
        CHECK_INT(memif_ct_tx_burst(&z.stx, data, total, lens, 3), 3);
        memif_ct_pkt_t pk[3];
        /* A fresh pool gives slots consecutive buffers: the chain lies in place too. */
        CHECK_INT(memif_ct_rx_peek(&z.crx, pk, 3, scratch, sizeof(scratch)), 3);
        CHECK_MEM(pk[0].addr, data, 1);
        CHECK_MEM(pk[1].addr, data + 1, bs);
        CHECK_EQ(pk[2].scratch, 0);
        CHECK_EQ(pk[2].length, bs + 1);
        CHECK_MEM(pk[2].addr, data + 1 + bs, bs + 1);
        CHECK_INT(memif_ct_rx_release(&z.crx), 4);
        CHECK_EQ(stats_of(&z.crx).drops + stats_of(&z.crx).bad_desc, 0);
        free(data);
        free(out);
        zc_teardown(&z);
    }
}

/* ====================================================================================== */
/* review findings (issue fz): each one failed before its fix                               */

/* An honest server releasing slots while a pool client transmits. The client read the server's
 * tail twice, once to reclaim and once to count free slots: a tail that moved on in between let
 * TX overwrite slots whose buffers were never given back (leaked: RING, in no slot) and made the
 * next reclaim give back buffers just published there, still in flight. The slot table is the
 * caller's, so after every call its entries must be exactly the pool's RING buffers. */
typedef struct {
    memif_ct_ring_t *ring;
    _Atomic int stop;
} releaser_t;

static void *release_forever(void *arg)
{
    releaser_t *r = arg;
    while (!atomic_load(&r->stop))
        atomic_store(&r->ring->tail, atomic_load(&r->ring->head));
    return NULL;
}

static void test_pool_tx_races_honest_server(void)
{
    zc_t z;
    ZCP(&z, 2, 128, 128, 16);
    releaser_t rel = {z.s2m, 0};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, release_forever, &rel) == 0);
    uint8_t data[64] = {0};
    uint32_t len1 = 64, mismatch = 0;
    for (int i = 0; i < 200000 && !mismatch; i++) {
        uint32_t idx[2], lens[2] = {64, 64}, got = memif_ct_pool_alloc(z.ptx, idx, 2);
        int sent = (i & 1) ? memif_ct_tx_burst(&z.ctx, data, sizeof(data), &len1, 1)
                           : memif_ct_tx_buffers(&z.ctx, idx, lens, got);
        if (!(i & 1) && sent >= 0 && (uint32_t)sent < got)
            memif_ct_pool_free(z.ptx, idx + sent, got - (uint32_t)sent);
        else if (i & 1)
            memif_ct_pool_free(z.ptx, idx, got);
        uint32_t f, a, r, held = 0;
        memif_ct_pool_counts(z.ptx, &f, &a, &r);
        for (uint32_t s = 0; s < z.N; s++)
            held += z.tab_tx[s] != UINT32_MAX;
        mismatch = held != r || a != 0;
    }
    atomic_store(&rel.stop, 1);
    pthread_join(th, NULL);
    CHECK_EQ(mismatch, 0);
    atomic_store(&z.s2m->tail, atomic_load(&z.s2m->head));
    CHECK(memif_ct_queue_reclaim(&z.ctx) >= 0);
    check_counts(z.ptx, 16, 0, 0);
    zc_teardown(&z);
}

/* unreserve of every good reservation left a bad posted slot before them reserved (reserved 0,
 * reserved_slots 1). tx_burst then went ahead (it checks reserved only) and moved the tail, the
 * stale reserved_slots made the next reserve skip a posted slot, and the commit published that
 * skipped slot - a buffer the application never wrote - as the packet. */
static void test_unreserve_all_then_tx_burst(void)
{
    zc_t z;
    ZCP(&z, 2, 128, 128, 4);
    memif_ct_buf_t r[4];
    uint8_t data[16], out[512];
    uint32_t len = 16, olens[4];
    z.m2s->desc[0].region = 7; /* the client spoils its first posted slot */
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 2), 2);
    CHECK_INT(memif_ct_tx_unreserve(&z.stx, 2), MEMIF_CT_OK);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 0);
    CHECK_EQ(memif_ct_queue_free(&z.stx), 4); /* nothing is reserved: every posted slot is free */
    fill(data, 16, 1);
    CHECK_INT(memif_ct_tx_burst(&z.stx, data, 16, &len, 1), 1); /* slot 0 handed back, slot 1 sent */
    CHECK_EQ(tail_of(z.m2s), 2);
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 1), 1);
    memif_ct_buf_t own;
    REQUIRE(memif_ct_pool_buffer(z.prx, z.tab_rx[2], &own) == MEMIF_CT_OK);
    CHECK(r[0].addr == own.addr); /* the next posted slot, none skipped */
    fill(r[0].addr, 16, 2);
    CHECK_INT(memif_ct_tx_commit(&z.stx, &len, 1), 1);
    CHECK_EQ(tail_of(z.m2s), 3);
    CHECK_INT(memif_ct_rx_burst(&z.crx, out, sizeof(out), olens, 4), 2);
    CHECK(filled(out, 16, 1));
    CHECK(filled(out + 16, 16, 2));
    zc_teardown(&z);
}

/* And by a reserve that finds only bad posted slots (found by fuzz_burst's zero-copy session). */
static void test_reserve_finds_only_bad(void)
{
    zc_t z;
    ZCP(&z, 2, 128, 128, 4);
    memif_ct_buf_t r[4];
    z.m2s->desc[0].length = 0;
    z.m2s->desc[1].region = 7;
    atomic_store(&z.m2s->head, (uint16_t)2); /* only the two bad ones posted */
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 4), 0);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 0);
    CHECK_EQ(memif_ct_queue_free(&z.stx), 2);
    atomic_store(&z.m2s->head, (uint16_t)4);
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 1), 1);
    memif_ct_buf_t own;
    REQUIRE(memif_ct_pool_buffer(z.prx, z.tab_rx[2], &own) == MEMIF_CT_OK);
    CHECK(r[0].addr == own.addr);
    zc_teardown(&z);
}

/* The same stale state, reached by a client that rewrites a slot marked bad at reserve into a
 * good one before commit: the commit takes it for a reservation, and the last real reservation
 * was left reserved_slots-only (reserved 0). */
static void test_commit_after_client_unmarks(void)
{
    zc_t z;
    ZCP(&z, 2, 128, 128, 4);
    memif_ct_buf_t r[4];
    uint32_t len = 8, olens[4];
    uint8_t data[8] = {0}, out[512];
    memif_ct_desc_t posted0 = z.m2s->desc[0];
    z.m2s->desc[0].region = 7;
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 1), 1); /* slot 0 marked bad, slot 1 reserved */
    z.m2s->desc[0] = posted0;                         /* ... and un-marked by the client */
    CHECK_INT(memif_ct_tx_commit(&z.stx, &len, 1), 1);
    CHECK_EQ(memif_ct_tx_reserved(&z.stx), 0);
    CHECK_EQ(memif_ct_queue_free(&z.stx), (uint32_t)(4 - tail_of(z.m2s)));
    CHECK_INT(memif_ct_tx_burst(&z.stx, data, 8, &len, 1), 1);
    CHECK_INT(memif_ct_tx_reserve(&z.stx, r, 4), (int)(4 - tail_of(z.m2s)));
    (void)memif_ct_rx_burst(&z.crx, out, sizeof(out), olens, 4);
    zc_teardown(&z);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    RUN("memseg math", test_memseg());
    RUN("pool_bytes and pool_init arguments", test_pool_bytes_args());
    RUN("pool alloc/free/accounting", test_pool_accounting());
    RUN("pool_write", test_pool_write());
    RUN("pool_write by either copy method, overlapping data too", test_pool_write_copy_methods());
    RUN("pool buffer sizes", test_pool_buffer_sizes());
    RUN("set_pool", test_set_pool());
    RUN("tx_burst on a pool client", test_pool_tx_burst());
    RUN("tx_buffers", test_tx_buffers());
    RUN("a two-segment pool: tx_burst and tx_buffers", test_pool_two_segments());
    RUN("drop_pool mid-traffic", test_drop_pool());
    RUN("hostile server on a pool client's RX", test_pool_client_rx_hostile());
    RUN("server tx_reserve/commit", test_reserve_commit());
    RUN("rx_peek S2M", test_peek_copy_mode(0));
    RUN("rx_peek M2S", test_peek_copy_mode(1));
    RUN("rx_peek hostile and pool", test_peek_hostile_and_pool());
    RUN("pool round trips at buffer-size edges", test_pool_round_trip_sizes());
    RUN("pool TX against a server releasing concurrently", test_pool_tx_races_honest_server());
    RUN("unreserve everything, then tx_burst and reserve", test_unreserve_all_then_tx_burst());
    RUN("commit after the client un-marks a bad slot", test_commit_after_client_unmarks());
    RUN("reserve that finds only bad posted slots", test_reserve_finds_only_bad());
    return mt_summary();
}
