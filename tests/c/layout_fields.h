/* layout_fields.h - the size, alignment and field offsets of every public struct of memif_ct.h,
 * as one list. c_layout.c evaluates it with the C compiler and cxx_header.cpp with the C++
 * compiler, which then proves the two languages lay the structs out alike. */
#ifndef MEMIF_CT_LAYOUT_FIELDS_H
#define MEMIF_CT_LAYOUT_FIELDS_H

#include "memif_ct.h"

#define LAYOUT_ITEMS(TYPE, FIELD)                                                                                      \
    TYPE(memif_ct_desc_t)                                                                                              \
    FIELD(memif_ct_desc_t, flags) FIELD(memif_ct_desc_t, region) FIELD(memif_ct_desc_t, length)                        \
    FIELD(memif_ct_desc_t, offset) FIELD(memif_ct_desc_t, metadata)                                                    \
    TYPE(memif_ct_ring_t)                                                                                              \
    FIELD(memif_ct_ring_t, cookie) FIELD(memif_ct_ring_t, flags) FIELD(memif_ct_ring_t, head)                          \
    FIELD(memif_ct_ring_t, pad0) FIELD(memif_ct_ring_t, tail) FIELD(memif_ct_ring_t, pad1)                             \
    FIELD(memif_ct_ring_t, desc)                                                                                       \
    TYPE(memif_ct_region_t)                                                                                            \
    FIELD(memif_ct_region_t, base) FIELD(memif_ct_region_t, size)                                                      \
    TYPE(memif_ct_layout_t)                                                                                            \
    FIELD(memif_ct_layout_t, num_s2m) FIELD(memif_ct_layout_t, num_m2s) FIELD(memif_ct_layout_t, log2_ring_size)       \
    FIELD(memif_ct_layout_t, buffer_size) FIELD(memif_ct_layout_t, ring_bytes)                                         \
    FIELD(memif_ct_layout_t, buffers_offset) FIELD(memif_ct_layout_t, total_size)                                      \
    TYPE(memif_ct_stats_t)                                                                                             \
    FIELD(memif_ct_stats_t, packets) FIELD(memif_ct_stats_t, bytes) FIELD(memif_ct_stats_t, chains)                    \
    FIELD(memif_ct_stats_t, bad_desc) FIELD(memif_ct_stats_t, bad_ring) FIELD(memif_ct_stats_t, drops)                 \
    FIELD(memif_ct_stats_t, no_space) FIELD(memif_ct_stats_t, bad_chain) FIELD(memif_ct_stats_t, skipped)              \
    TYPE(memif_ct_queue_t)                                                                                             \
    FIELD(memif_ct_queue_t, ring) FIELD(memif_ct_queue_t, regions) FIELD(memif_ct_queue_t, num_regions)                \
    FIELD(memif_ct_queue_t, ring_size) FIELD(memif_ct_queue_t, mask) FIELD(memif_ct_queue_t, log2_ring_size)           \
    FIELD(memif_ct_queue_t, role) FIELD(memif_ct_queue_t, type) FIELD(memif_ct_queue_t, tx)                            \
    FIELD(memif_ct_queue_t, last_head) FIELD(memif_ct_queue_t, last_tail) FIELD(memif_ct_queue_t, buffer_region)       \
    FIELD(memif_ct_queue_t, buffer_size) FIELD(memif_ct_queue_t, eventfd) FIELD(memif_ct_queue_t, buffer_offset)       \
    FIELD(memif_ct_queue_t, partial_start) FIELD(memif_ct_queue_t, partial_valid)                                      \
    FIELD(memif_ct_queue_t, pool_state) FIELD(memif_ct_queue_t, stats) FIELD(memif_ct_queue_t, pool)                   \
    FIELD(memif_ct_queue_t, slot_buf) FIELD(memif_ct_queue_t, reclaimed) FIELD(memif_ct_queue_t, peeked)               \
    FIELD(memif_ct_queue_t, reserved) FIELD(memif_ct_queue_t, reserved_slots)                                          \
    TYPE(memif_ct_segment_t)                                                                                           \
    FIELD(memif_ct_segment_t, base) FIELD(memif_ct_segment_t, size) FIELD(memif_ct_segment_t, offset)                  \
    FIELD(memif_ct_segment_t, region) FIELD(memif_ct_segment_t, pad)                                                   \
    TYPE(memif_ct_buf_t)                                                                                               \
    FIELD(memif_ct_buf_t, addr) FIELD(memif_ct_buf_t, offset) FIELD(memif_ct_buf_t, capacity)                          \
    FIELD(memif_ct_buf_t, region) FIELD(memif_ct_buf_t, state)                                                         \
    TYPE(memif_ct_pkt_t)                                                                                               \
    FIELD(memif_ct_pkt_t, addr) FIELD(memif_ct_pkt_t, length) FIELD(memif_ct_pkt_t, slots)                             \
    FIELD(memif_ct_pkt_t, scratch)                                                                                     \
    TYPE(memif_ct_constant_t)                                                                                          \
    FIELD(memif_ct_constant_t, name) FIELD(memif_ct_constant_t, value)

typedef struct {
    const char *name;
    size_t value;
} layout_item_t;

#define LAYOUT_TYPE(type) {"sizeof(" #type ")", sizeof(type)}, {"alignof(" #type ")", MEMIF_CT_ALIGNOF(type)},
#define LAYOUT_FIELD(type, field) {"offsetof(" #type ", " #field ")", offsetof(type, field)},
#define LAYOUT_TABLE {LAYOUT_ITEMS(LAYOUT_TYPE, LAYOUT_FIELD)}

#ifdef __cplusplus
extern "C" {
#endif
/* The list as the C compiler sees it (c_layout.c). */
extern const layout_item_t c_layout[];
extern const size_t c_layout_count;
#ifdef __cplusplus
}
#endif

#endif /* MEMIF_CT_LAYOUT_FIELDS_H */
