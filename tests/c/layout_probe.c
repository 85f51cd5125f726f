/* layout_probe.c - report the ring ABI the *library* was built with, measured from the bytes it
 * writes and reads, and compare it with the header this program was compiled against.
 *
 * Prints one line "cacheline=C tail_offset=T desc_offset=D ring_bytes_log2_1=R" and
 * "N passed, M failed"; exits non-zero if the library and the header disagree
 * (memif-protocol.md section 5: tail at CL, descriptors at 2*CL). */
#include "memif_ct.h"
#include "minitest.h"

#include <stdlib.h>

#define MARK_REGION 0x0102u
#define MARK_OFFSET 0x00ABCD00u

/* Where the library reads tail: plant a value at each candidate offset and see what a
 * server queue picks up as its last_tail. */
static long find_tail_offset(uint8_t *mem, size_t size)
{
    memif_ct_region_t reg = {mem, size};
    for (size_t cand = 8; cand <= 512; cand += 8) {
        memset(mem, 0, size);
        if (memif_ct_ring_init(mem, 1, 0, 0, 64) != MEMIF_CT_OK)
            return -1;
        const uint16_t v = 0x1234;
        memcpy(mem + cand, &v, 2);
        memif_ct_queue_t q;
        if (memif_ct_queue_init(&q, mem, 1, MEMIF_CT_ROLE_SERVER, MEMIF_CT_RING_TYPE_S2M, &reg, 1, 0, 0, 0) ==
                MEMIF_CT_OK &&
            q.last_tail == v)
            return (long)cand;
    }
    return -1;
}

/* Where the library writes descriptor 0: look for the region and offset ring_init stored. */
static long find_desc_offset(uint8_t *mem, size_t size)
{
    memset(mem, 0xFF, size);
    if (memif_ct_ring_init(mem, 1, MARK_REGION, MARK_OFFSET, 64) != MEMIF_CT_OK)
        return -1;
    for (size_t p = 8; p + 16 <= size; p += 8) {
        uint16_t region;
        uint32_t length, offset;
        memcpy(&region, mem + p + 2, 2);
        memcpy(&length, mem + p + 4, 4);
        memcpy(&offset, mem + p + 8, 4);
        if (region == MARK_REGION && length == 64 && offset == MARK_OFFSET)
            return (long)p;
    }
    return -1;
}

int main(void)
{
    size_t size = 4096;
    uint8_t *mem = aligned_alloc(4096, size);
    if (!mem)
        return 2;
    long cl = (long)memif_ct_cacheline_size();
    long tail = find_tail_offset(mem, size);
    long desc = find_desc_offset(mem, size);
    long rb = (long)memif_ct_ring_bytes(1);
    printf("cacheline=%ld tail_offset=%ld desc_offset=%ld ring_bytes_log2_1=%ld header_cacheline=%d\n", cl, tail,
           desc, rb, MEMIF_CT_CACHELINE_SIZE);
    mt_begin("library layout matches the header");
    CHECK_INT(cl, MEMIF_CT_CACHELINE_SIZE);
    CHECK_INT(tail, offsetof(memif_ct_ring_t, tail));
    CHECK_INT(desc, offsetof(memif_ct_ring_t, desc));
    CHECK_INT(tail, cl);
    CHECK_INT(desc, 2 * cl);
    CHECK_INT(rb, 2 * cl + 2 * MEMIF_CT_DESC_SIZE);
    mt_end();
    free(mem);
    return mt_summary();
}
