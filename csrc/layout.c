/* Region layout math and ring/queue setup (memif-protocol.md section 5). */
#include "internal.h"

#include <string.h>

uint64_t memif_ct_ring_bytes(uint32_t log2_ring_size)
{
    if (log2_ring_size < MEMIF_CT_MIN_LOG2_RING_SIZE || log2_ring_size > MEMIF_CT_MAX_LOG2_RING_SIZE)
        return 0;
    return sizeof(memif_ct_ring_t) + (uint64_t)MEMIF_CT_DESC_SIZE * (1u << log2_ring_size);
}

static int count_ok(uint32_t n) { return n >= 1 && n <= MEMIF_CT_MAX_RINGS_PER_DIRECTION; }

static int buffer_size_ok(uint32_t size)
{
    return size >= MEMIF_CT_MIN_BUFFER_SIZE && size <= MEMIF_CT_MAX_BUFFER_SIZE;
}

int memif_ct_layout_init(memif_ct_layout_t *layout, uint32_t num_s2m, uint32_t num_m2s, uint32_t log2_ring_size,
                         uint32_t buffer_size)
{
    if (!layout)
        return MEMIF_CT_ERR_NULL;
    uint64_t ring_bytes = memif_ct_ring_bytes(log2_ring_size);
    if (!count_ok(num_s2m) || !count_ok(num_m2s) || ring_bytes == 0 || !buffer_size_ok(buffer_size))
        return MEMIF_CT_ERR_ARG;
    /* At most 510 rings * 16384 slots * 65535 bytes: about 5.5e11, far below 2^64. */
    uint64_t rings = (uint64_t)num_s2m + num_m2s;
    layout->num_s2m = num_s2m;
    layout->num_m2s = num_m2s;
    layout->log2_ring_size = log2_ring_size;
    layout->buffer_size = buffer_size;
    layout->ring_bytes = ring_bytes;
    layout->buffers_offset = rings * ring_bytes;
    layout->total_size = layout->buffers_offset + rings * ((uint64_t)1 << log2_ring_size) * buffer_size;
    return MEMIF_CT_OK;
}

/* A layout memif_ct_layout_init() could have made: the caller may have filled it in. */
static int layout_ok(const memif_ct_layout_t *layout)
{
    return count_ok(layout->num_s2m) && count_ok(layout->num_m2s) && buffer_size_ok(layout->buffer_size) &&
           layout->ring_bytes != 0 && layout->ring_bytes == memif_ct_ring_bytes(layout->log2_ring_size) &&
           layout->buffers_offset == ((uint64_t)layout->num_s2m + layout->num_m2s) * layout->ring_bytes;
}

/* S2M rings come first, then M2S rings; ring (type, index) is number index + type * num_s2m. */
static uint64_t ring_number(const memif_ct_layout_t *layout, uint32_t type, uint32_t index)
{
    if (!layout_ok(layout))
        return UINT64_MAX;
    if (type == MEMIF_CT_RING_TYPE_S2M && index < layout->num_s2m)
        return index;
    if (type == MEMIF_CT_RING_TYPE_M2S && index < layout->num_m2s)
        return (uint64_t)layout->num_s2m + index;
    return UINT64_MAX;
}

uint64_t memif_ct_layout_ring_offset(const memif_ct_layout_t *layout, uint32_t type, uint32_t index)
{
    if (!layout)
        return UINT64_MAX;
    uint64_t n = ring_number(layout, type, index);
    return n == UINT64_MAX ? UINT64_MAX : n * layout->ring_bytes;
}

uint64_t memif_ct_layout_buffer_offset(const memif_ct_layout_t *layout, uint32_t type, uint32_t index)
{
    if (!layout)
        return UINT64_MAX;
    uint64_t n = ring_number(layout, type, index);
    if (n == UINT64_MAX)
        return UINT64_MAX;
    return layout->buffers_offset + n * ((uint64_t)1 << layout->log2_ring_size) * layout->buffer_size;
}

int memif_ct_ring_init(void *ring_mem, uint32_t log2_ring_size, uint16_t buffer_region, uint64_t buffer_offset,
                       uint32_t buffer_size)
{
    if (!ring_mem)
        return MEMIF_CT_ERR_NULL;
    if (memif_ct_ring_bytes(log2_ring_size) == 0 || !buffer_size_ok(buffer_size))
        return MEMIF_CT_ERR_ARG;
    if ((uintptr_t)ring_mem % _Alignof(memif_ct_ring_t))
        return MEMIF_CT_ERR_ALIGN;
    uint32_t size = 1u << log2_ring_size;
    /* Descriptor offsets are u32: every buffer of the ring must start below 4 GiB. Checked before
     * anything is written: a refused call leaves the ring as it was. */
    if (buffer_region != MEMIF_CT_NO_REGION &&
        (buffer_offset > UINT32_MAX || buffer_offset + (uint64_t)(size - 1) * buffer_size > UINT32_MAX))
        return MEMIF_CT_ERR_OVERFLOW;
    memif_ct_ring_t *ring = ring_mem;
    memset(ring_mem, 0, sizeof(memif_ct_ring_t));
    if (buffer_region == MEMIF_CT_NO_REGION) {
        /* Buffers come from a pool later (memif_ct_queue_set_pool): no descriptor names one yet. */
        memset(ring->desc, 0, (size_t)size * sizeof(memif_ct_desc_t));
        size = 0;
    }
    for (uint32_t s = 0; s < size; s++) {
        ring->desc[s].flags = 0;
        ring->desc[s].region = buffer_region;
        ring->desc[s].length = buffer_size;
        ring->desc[s].offset = (uint32_t)(buffer_offset + (uint64_t)s * buffer_size);
        ring->desc[s].metadata = 0;
    }
    ring->cookie = MEMIF_CT_COOKIE;
    atomic_store_explicit(&ring->flags, 0, memory_order_relaxed);
    atomic_store_explicit(&ring->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&ring->head, 0, memory_order_release);
    return MEMIF_CT_OK;
}

/* True if [p, p + len) lies inside one mapped region. */
static int inside_a_region(const memif_ct_region_t *regions, uint16_t n, const uint8_t *p, uint64_t len)
{
    for (uint16_t i = 0; i < n; i++) {
        const uint8_t *base = regions[i].base;
        if (!base || p < base)
            continue;
        uint64_t off = (uint64_t)(p - base);
        if (off <= regions[i].size && len <= regions[i].size - off)
            return 1;
    }
    return 0;
}

int memif_ct_queue_init(memif_ct_queue_t *q, void *ring_mem, uint32_t log2_ring_size, uint32_t role, uint32_t type,
                        const memif_ct_region_t *regions, uint16_t num_regions, uint16_t buffer_region,
                        uint64_t buffer_offset, uint32_t buffer_size)
{
    if (!q || !ring_mem || !regions)
        return MEMIF_CT_ERR_NULL;
    uint64_t ring_bytes = memif_ct_ring_bytes(log2_ring_size);
    if (ring_bytes == 0 || role > MEMIF_CT_ROLE_SERVER || type > MEMIF_CT_RING_TYPE_M2S || num_regions == 0 ||
        num_regions > MEMIF_CT_MAX_REGIONS)
        return MEMIF_CT_ERR_ARG;
    if (!inside_a_region(regions, num_regions, ring_mem, ring_bytes))
        return MEMIF_CT_ERR_LAYOUT;
    /* The peer picks ring offsets (ADD_RING): a misaligned ring would make head/tail accesses
     * misaligned, which is undefined and can tear. */
    if ((uintptr_t)ring_mem % _Alignof(memif_ct_ring_t))
        return MEMIF_CT_ERR_ALIGN;
    memif_ct_ring_t *ring = ring_mem;
    if (ring->cookie != MEMIF_CT_COOKIE)
        return MEMIF_CT_ERR_COOKIE;
    uint32_t size = 1u << log2_ring_size;
    int no_region = role == MEMIF_CT_ROLE_CLIENT && buffer_region == MEMIF_CT_NO_REGION;
    if (no_region) {
        if (!buffer_size_ok(buffer_size))
            return MEMIF_CT_ERR_ARG;
    } else if (role == MEMIF_CT_ROLE_CLIENT) {
        if (!buffer_size_ok(buffer_size) || buffer_region >= num_regions || !regions[buffer_region].base)
            return MEMIF_CT_ERR_ARG;
        uint64_t need = (uint64_t)size * buffer_size;
        const memif_ct_region_t *r = &regions[buffer_region];
        if (buffer_offset > r->size || need > r->size - buffer_offset)
            return MEMIF_CT_ERR_LAYOUT;
        if (buffer_offset + need - buffer_size > UINT32_MAX)
            return MEMIF_CT_ERR_OVERFLOW;
    }
    memset(q, 0, sizeof(*q));
    q->ring = ring;
    q->regions = regions;
    q->num_regions = num_regions;
    q->ring_size = (uint16_t)size; /* 16384 at most */
    q->mask = (uint16_t)(size - 1);
    q->log2_ring_size = (uint8_t)log2_ring_size;
    q->role = (uint8_t)role;
    q->type = (uint8_t)type;
    q->tx = (role == MEMIF_CT_ROLE_CLIENT) == (type == MEMIF_CT_RING_TYPE_S2M);
    q->eventfd = -1;
    q->last_head = atomic_load_explicit(&ring->head, memory_order_acquire);
    q->last_tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
    if (role == MEMIF_CT_ROLE_CLIENT) {
        q->buffer_region = buffer_region;
        q->buffer_offset = no_region ? 0 : buffer_offset;
        q->buffer_size = buffer_size;
        q->pool_state = no_region ? MEMIF_CT_POOL_WANTED : MEMIF_CT_POOL_NONE;
    }
    return MEMIF_CT_OK;
}

void memif_ct_queue_stats(const memif_ct_queue_t *q, memif_ct_stats_t *out)
{
    if (q && out)
        *out = q->stats;
}

void memif_ct_queue_stats_reset(memif_ct_queue_t *q)
{
    if (q)
        memset(&q->stats, 0, sizeof(q->stats));
}
