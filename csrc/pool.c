/* Segments, memseg math and the buffer pool (memif-protocol.md section 5, "Zero-copy").
 *
 * A segment is memory the client exposes as (part of) a region; a descriptor addresses it by
 * region and u32 offset. The pool carves fixed-size buffers from segments and tracks each one's
 * owner (FREE, APP, RING) so that accounting is exact and a double free is caught. It lives in
 * caller memory: a header, a copy of the segments, the LIFO free stack and one state byte per
 * buffer. Nothing allocates; alloc/free are O(1) per buffer. */
#include "internal.h"

#include <string.h>

/* ---- memseg math ---- */

/* [addr, addr + length) inside segment s: its offset from s->base, else UINT64_MAX. */
static uint64_t seg_offset_of(const memif_ct_segment_t *s, uintptr_t addr, uint64_t length)
{
    uintptr_t base = (uintptr_t)s->base;
    if (!s->base || length == 0 || addr < base)
        return UINT64_MAX;
    uint64_t off = (uint64_t)(addr - base);
    if (off >= s->size || length > s->size - off)
        return UINT64_MAX;
    return off;
}

int memif_ct_memseg_to_desc(const memif_ct_segment_t *segs, uint32_t n, const void *addr, uint64_t length,
                            uint16_t *region, uint32_t *offset)
{
    if (!segs || !addr || !region || !offset)
        return MEMIF_CT_ERR_NULL;
    if (length == 0 || length > UINT32_MAX)
        return MEMIF_CT_ERR_RANGE; /* a descriptor's length is 1..u32 */
    for (uint32_t i = 0; i < n; i++) {
        uint64_t off = seg_offset_of(&segs[i], (uintptr_t)addr, length);
        /* Descriptor offsets are u32: the buffer must start below 4 GiB in its region. */
        if (off == UINT64_MAX || segs[i].offset > UINT32_MAX || off > UINT32_MAX - segs[i].offset)
            continue;
        *region = segs[i].region;
        *offset = (uint32_t)(segs[i].offset + off);
        return MEMIF_CT_OK;
    }
    return MEMIF_CT_ERR_RANGE;
}

void *memif_ct_memseg_to_addr(const memif_ct_segment_t *segs, uint32_t n, uint16_t region, uint64_t offset,
                              uint64_t length)
{
    if (!segs || length == 0)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        const memif_ct_segment_t *s = &segs[i];
        if (s->region != region || !s->base || offset < s->offset)
            continue;
        uint64_t off = offset - s->offset;
        if (off < s->size && length <= s->size - off)
            return s->base + off;
    }
    return NULL;
}

/* ---- pool layout ---- */

static uint64_t align8(uint64_t n) { return (n + 7) & ~(uint64_t)7; }

/* Two ranges [a, a + an) and [b, b + bn) share a byte. */
static int overlap(uint64_t a, uint64_t an, uint64_t b, uint64_t bn) { return a < b + bn && b < a + an; }

/* Buffers in all segments, or 0 if the arguments are bad (see memif_ct_pool_bytes). */
static uint64_t pool_buffers(const memif_ct_segment_t *segs, uint32_t n, uint32_t buffer_size)
{
    if (!segs || n == 0 || n > MEMIF_CT_MAX_REGIONS || buffer_size < MEMIF_CT_MIN_BUFFER_SIZE ||
        buffer_size > MEMIF_CT_MAX_BUFFER_SIZE)
        return 0;
    uint64_t count = 0;
    for (uint32_t i = 0; i < n; i++) {
        const memif_ct_segment_t *s = &segs[i];
        if (!s->base || s->size > ((uint64_t)1 << 32) || s->offset > ((uint64_t)1 << 32) - s->size ||
            (uintptr_t)s->base > UINTPTR_MAX - s->size)
            return 0;
        for (uint32_t j = 0; j < i; j++) {
            const memif_ct_segment_t *t = &segs[j];
            if (overlap((uintptr_t)s->base, s->size, (uintptr_t)t->base, t->size) ||
                (s->region == t->region && overlap(s->offset, s->size, t->offset, t->size)))
                return 0;
        }
        count += s->size / buffer_size;
    }
    /* Indexes are u32 and UINT32_MAX means "no buffer". */
    return count < UINT32_MAX ? count : 0;
}

uint64_t memif_ct_pool_bytes(const memif_ct_segment_t *segs, uint32_t n, uint32_t buffer_size)
{
    uint64_t count = pool_buffers(segs, n, buffer_size);
    if (count == 0)
        return 0;
    return align8(sizeof(memif_ct_pool_t)) + align8((uint64_t)n * sizeof(memif_ct_segment_t)) +
           align8(((uint64_t)n + 1) * 4) + align8(count * 4) + align8(count);
}

int memif_ct_pool_init(memif_ct_pool_t *pool, size_t mem_size, const memif_ct_segment_t *segs, uint32_t n,
                       uint32_t buffer_size)
{
    if (!pool || !segs)
        return MEMIF_CT_ERR_NULL;
    uint64_t need = memif_ct_pool_bytes(segs, n, buffer_size);
    if (need == 0)
        return MEMIF_CT_ERR_ARG;
    if (mem_size < need)
        return MEMIF_CT_ERR_LAYOUT;
    if ((uintptr_t)pool % 8)
        return MEMIF_CT_ERR_ALIGN;
    /* The pool's own memory must be apart from its buffers (it would hand out its own header) and
     * from the segment table it copies (written over before it is read). */
    if (overlap((uintptr_t)segs, (uint64_t)n * sizeof(memif_ct_segment_t), (uintptr_t)pool, need))
        return MEMIF_CT_ERR_ARG;
    for (uint32_t i = 0; i < n; i++)
        if (overlap((uintptr_t)segs[i].base, segs[i].size, (uintptr_t)pool, need))
            return MEMIF_CT_ERR_LAYOUT;
    uint32_t count = (uint32_t)pool_buffers(segs, n, buffer_size);
    uint8_t *p = (uint8_t *)pool + align8(sizeof(memif_ct_pool_t));
    pool->segs = (memif_ct_segment_t *)p;
    p += align8((uint64_t)n * sizeof(memif_ct_segment_t));
    pool->seg_first = (uint32_t *)p;
    p += align8(((uint64_t)n + 1) * 4);
    pool->stack = (uint32_t *)p;
    p += align8((uint64_t)count * 4);
    pool->state = p;
    memcpy(pool->segs, segs, n * sizeof(memif_ct_segment_t));
    uint32_t first = 0;
    for (uint32_t i = 0; i < n; i++) {
        pool->seg_first[i] = first;
        first += (uint32_t)(segs[i].size / buffer_size);
    }
    pool->seg_first[n] = count;
    /* Buffer 0 on top: a fresh pool hands out 0, 1, 2, ... */
    for (uint32_t i = 0; i < count; i++)
        pool->stack[i] = count - 1 - i;
    memset(pool->state, MEMIF_CT_BUF_FREE, count);
    pool->count = count;
    pool->buffer_size = buffer_size;
    pool->nseg = n;
    pool->free_top = count;
    pool->n_app = 0;
    pool->n_ring = 0;
    return MEMIF_CT_OK;
}

uint32_t memif_ct_pool_count(const memif_ct_pool_t *pool) { return pool ? pool->count : 0; }

uint32_t memif_ct_pool_buffer_size(const memif_ct_pool_t *pool) { return pool ? pool->buffer_size : 0; }

void memif_ct_pool_counts(const memif_ct_pool_t *pool, uint32_t *free, uint32_t *app, uint32_t *ring)
{
    if (free)
        *free = pool ? pool->free_top : 0;
    if (app)
        *app = pool ? pool->n_app : 0;
    if (ring)
        *ring = pool ? pool->n_ring : 0;
}

/* ---- buffer moves ---- */

uint32_t memif_ct_pool_alloc(memif_ct_pool_t *pool, uint32_t *idx, uint32_t n)
{
    if (!pool || !idx)
        return 0;
    /* free_top in a register: the byte store to state[] may alias it */
    uint32_t top = pool->free_top;
    const uint32_t *stack = pool->stack;
    uint8_t *state = pool->state;
    uint32_t got = n < top ? n : top;
    for (uint32_t i = 0; i < got; i++) {
        uint32_t b = stack[--top];
        state[b] = MEMIF_CT_BUF_APP;
        idx[i] = b;
    }
    pool->free_top = top;
    pool->n_app += got;
    return got;
}

int memif_ct_pool_free(memif_ct_pool_t *pool, const uint32_t *idx, uint32_t n)
{
    if (!pool || (n && !idx))
        return MEMIF_CT_ERR_NULL;
    int rc = MEMIF_CT_OK;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = idx[i];
        if (b >= pool->count || pool->state[b] != MEMIF_CT_BUF_APP) {
            rc = MEMIF_CT_ERR_STATE;
            continue;
        }
        pool->state[b] = MEMIF_CT_BUF_FREE;
        pool->stack[pool->free_top++] = b;
        pool->n_app--;
    }
    return rc;
}

int memif_ct_pool_write(memif_ct_pool_t *pool, const uint32_t *idx, uint32_t n, const uint8_t *data,
                        size_t data_size, const uint32_t *lengths, uint32_t max_length)
{
    if (!pool || (n && (!idx || !data || !lengths)))
        return MEMIF_CT_ERR_NULL;
    if (n > INT32_MAX)
        return MEMIF_CT_ERR_ARG;
    if (n == 0)
        return 0; /* (nothing of the pool read: it may be one pool_init refused) */
    const uint32_t most = max_length && max_length < pool->buffer_size ? max_length : pool->buffer_size;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) { /* check all before writing any */
        if (idx[i] >= pool->count || pool->state[idx[i]] != MEMIF_CT_BUF_APP)
            return MEMIF_CT_ERR_STATE;
        if (lengths[i] == 0 || lengths[i] > most || lengths[i] > data_size - total)
            return MEMIF_CT_ERR_ARG;
        total += lengths[i];
    }
    size_t pos = 0;
    memif_ct_pool_cursor_t cur; /* the pool read once: the copies may alias it */
    memif_ct_pool_cursor_init(&cur, pool);
    const int movsb = shm_copy_movsb();
    for (uint32_t i = 0; i < n; i++) {
        uint16_t region;
        uint64_t offset;
        const uint32_t len = lengths[i];
        uint8_t *buf = memif_ct_pool_cursor_locate(&cur, idx[i], &region, &offset);
        shm_copy(buf, data + pos, len, movsb); /* (data may be a buffer: memmove then) */
        pos += len;
    }
    return (int)n;
}

/* memif_ct_pool_take, _give and _locate are inline in internal.h: the TX and reclaim paths
 * call them once per packet. */

int memif_ct_pool_buffer(const memif_ct_pool_t *pool, uint32_t idx, memif_ct_buf_t *out)
{
    if (!pool || !out)
        return MEMIF_CT_ERR_NULL;
    if (idx >= pool->count)
        return MEMIF_CT_ERR_RANGE;
    out->addr = memif_ct_pool_locate(pool, idx, &out->region, &out->offset);
    out->capacity = pool->buffer_size;
    out->state = pool->state[idx];
    return MEMIF_CT_OK;
}

int memif_ct_pool_index_of(const memif_ct_pool_t *pool, const void *addr, uint32_t *idx)
{
    if (!pool || !addr || !idx)
        return MEMIF_CT_ERR_NULL;
    for (uint32_t i = 0; i < pool->nseg; i++) {
        uint64_t off = seg_offset_of(&pool->segs[i], (uintptr_t)addr, 1);
        uint32_t k = off == UINT64_MAX ? 0 : (uint32_t)(off / pool->buffer_size);
        if (off == UINT64_MAX || off % pool->buffer_size || pool->seg_first[i] + k >= pool->seg_first[i + 1])
            continue;
        *idx = pool->seg_first[i] + k;
        return MEMIF_CT_OK;
    }
    return MEMIF_CT_ERR_RANGE;
}
