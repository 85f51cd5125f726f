/* cxx_header.cpp - csrc/memif_ct.h used from C++: it compiles (g++ -std=c++17 -Wall -Wextra
 * -Werror, and meson's -Wpedantic), gives every public struct the layout the C compiler gives
 * it (c_layout.c), and drives the C library, reading the ring's indexes as std::atomic.
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure. */
#include "memif_ct.h"
#include "layout_fields.h"
#include "minitest.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <type_traits>

/* The ring offsets the protocol fixes (memif-protocol.md section 5), in numbers. */
static_assert(sizeof(memif_ct_desc_t) == 16, "descriptor is 16 bytes");
static_assert(offsetof(memif_ct_ring_t, cookie) == 0, "ring.cookie at 0");
static_assert(offsetof(memif_ct_ring_t, flags) == 4, "ring.flags at 4");
static_assert(offsetof(memif_ct_ring_t, head) == 6, "ring.head at 6");
static_assert(offsetof(memif_ct_ring_t, tail) == MEMIF_CT_CACHELINE_SIZE, "ring.tail at CL");
static_assert(offsetof(memif_ct_ring_t, desc) == 2 * MEMIF_CT_CACHELINE_SIZE, "desc at 2*CL");
static_assert(std::is_same<decltype(memif_ct_ring_t::head), std::atomic<uint16_t>>::value, "C++ sees std::atomic");
static_assert(std::is_standard_layout<memif_ct_ring_t>::value, "the ring is standard-layout: offsetof is defined");
static_assert(std::is_trivially_copyable<memif_ct_queue_t>::value, "a queue is plain data");

static void test_layout_matches_c(void)
{
    static const layout_item_t cxx_layout[] = LAYOUT_TABLE;
    const size_t n = sizeof(cxx_layout) / sizeof(cxx_layout[0]);
    CHECK_EQ(c_layout_count, n);
    for (size_t i = 0; i < n && i < c_layout_count; i++) {
        if (strcmp(cxx_layout[i].name, c_layout[i].name) != 0)
            MT_FAIL("item %zu: C++ %s, C %s", i, cxx_layout[i].name, c_layout[i].name);
        else if (cxx_layout[i].value != c_layout[i].value)
            MT_FAIL("%s: C++ %zu, C %zu", cxx_layout[i].name, cxx_layout[i].value, c_layout[i].value);
    }
    CHECK_EQ(sizeof(memif_ct_queue_t), memif_ct_queue_sizeof());
    CHECK_EQ(sizeof(memif_ct_ring_t) + 2 * sizeof(memif_ct_desc_t), memif_ct_ring_bytes(1));
}

static void test_identity(void)
{
    CHECK_EQ(memif_ct_abi_version(), MEMIF_CT_ABI_VERSION);
    CHECK_EQ(memif_ct_cacheline_size(), MEMIF_CT_CACHELINE_SIZE);
    CHECK(strcmp(memif_ct_version(), MEMIF_CT_VERSION_STRING) == 0);
    CHECK(strcmp(memif_ct_strerror(MEMIF_CT_ERR_COOKIE), memif_ct_strerror(MEMIF_CT_OK)) != 0);
}

/* Client TX to server RX on one S2M ring, with the eventfd signal, from C++. */
static void test_burst(void)
{
    alignas(4096) static uint8_t mem[8192];
    memif_ct_layout_t lay;
    REQUIRE(memif_ct_layout_init(&lay, 1, 1, 2, 64) == MEMIF_CT_OK);
    REQUIRE(lay.total_size <= sizeof(mem));
    const memif_ct_region_t region = {mem, sizeof(mem)};
    memif_ct_ring_t *ring =
        reinterpret_cast<memif_ct_ring_t *>(mem + memif_ct_layout_ring_offset(&lay, MEMIF_CT_RING_TYPE_S2M, 0));
    const uint64_t buf = memif_ct_layout_buffer_offset(&lay, MEMIF_CT_RING_TYPE_S2M, 0);
    REQUIRE(memif_ct_ring_init(ring, 2, 0, buf, 64) == MEMIF_CT_OK);
    memif_ct_queue_t tx, rx;
    REQUIRE(memif_ct_queue_init(&tx, ring, 2, MEMIF_CT_ROLE_CLIENT, MEMIF_CT_RING_TYPE_S2M, &region, 1, 0, buf, 64) ==
            MEMIF_CT_OK);
    REQUIRE(memif_ct_queue_init(&rx, ring, 2, MEMIF_CT_ROLE_SERVER, MEMIF_CT_RING_TYPE_S2M, &region, 1, 0, 0, 0) ==
            MEMIF_CT_OK);
    const int efd = eventfd(0, EFD_NONBLOCK);
    REQUIRE(efd >= 0);
    CHECK_INT(memif_ct_queue_set_eventfd(&tx, efd), MEMIF_CT_OK);

    static const uint8_t data[] = "hello from C++";
    const uint32_t lengths[2] = {5, 9};
    CHECK_INT(memif_ct_tx_burst(&tx, data, 14, lengths, 2), 2);
    CHECK_EQ(ring->head.load(std::memory_order_acquire), 2); /* the C library's store, read as std::atomic */
    CHECK_INT(memif_ct_eventfd_clear(efd), 1);
    uint8_t out[128];
    uint32_t out_lengths[4];
    CHECK_INT(memif_ct_rx_burst(&rx, out, sizeof(out), out_lengths, 4), 2);
    CHECK_EQ(out_lengths[0], 5);
    CHECK_EQ(out_lengths[1], 9);
    CHECK_MEM(out, data, 14);
    CHECK_EQ(ring->tail.load(std::memory_order_acquire), 2);

    /* MASK_INT stored from C++ is what the library reads: no signal then. */
    ring->flags.store(MEMIF_CT_RING_FLAG_MASK_INT, std::memory_order_release);
    CHECK_INT(memif_ct_queue_needs_signal(&tx), 0);
    CHECK_INT(memif_ct_tx_burst(&tx, data, 14, lengths, 2), 2);
    CHECK_INT(memif_ct_eventfd_clear(efd), 0);
    memif_ct_stats_t stats;
    memif_ct_queue_stats(&tx, &stats);
    CHECK_EQ(stats.packets, 4);
    CHECK_EQ(stats.bytes, 28);
    close(efd);
}

int main(void)
{
    RUN("C++ sees the C layout of every public struct", test_layout_matches_c());
    RUN("identity from C++", test_identity());
    RUN("burst with eventfd signal from C++", test_burst());
    return mt_summary();
}
