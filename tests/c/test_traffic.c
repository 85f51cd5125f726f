/* test_traffic.c - unit tests of csrc/traffic.c: memif-ct's test frames stamped and checked in
 * bursts. Frames are built by hand here (headers written field by field), not by the library,
 * so a stamping bug cannot hide behind a matching verifying bug; tests/test_traffic_c.py holds
 * the C to frames.py's bytes and verdicts. Buffers are exactly sized allocations, so ASan reports
 * any access past a frame or a bitmap.
 *
 * Prints "N passed, M failed" last and exits non-zero on any failure. */
#include "memif_ct.h"
#include "minitest.h"

#include <stdlib.h>
#include <string.h>

#define PERIOD MEMIF_CT_FRAME_PATTERN_PERIOD

static uint8_t pattern[PERIOD + 2048];

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

/* A template of `size` bytes as frames.py lays it out: seq, crc and payload zero. */
static void make_template(uint8_t *t, uint32_t size)
{
    memset(t, 0, size);
    memcpy(t, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14);
    uint8_t *ip = t + 14;
    ip[0] = 0x45;
    put16(ip + 2, size - 14);
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, "\xc6\x12\0\x01\xc6\x12\0\x02", 8);
    put16(ip + 10, csum(ip, 20));
    put16(ip + 20, 9);
    put16(ip + 22, 9);
    put16(ip + 24, size - 34);
    memcpy(t + 42, "MEMCT1", 6);
}

static void test_crc32(void)
{
    CHECK_EQ(memif_ct_crc32(0, "", 0), 0u);
    CHECK_EQ(memif_ct_crc32(0, "123456789", 9), 0xCBF43926u); /* the CRC-32 check value */
    uint32_t part = memif_ct_crc32(0, "12345", 5);
    CHECK_EQ(memif_ct_crc32(part, "6789", 4), 0xCBF43926u);
    CHECK_EQ(memif_ct_crc32(7, NULL, 3), 7u);
    /* eight bytes a step must equal one bit a step, at every length and alignment, in pieces too */
    static uint8_t data[300 + 8];
    for (unsigned i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 131u + 7u);
    for (unsigned off = 0; off < 8; off++)
        for (unsigned len = 0; len <= 300; len++) {
            uint32_t c = 0xFFFFFFFFu;
            for (unsigned i = 0; i < len; i++) {
                c ^= data[off + i];
                for (int b = 0; b < 8; b++)
                    c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
            }
            CHECK_EQ(memif_ct_crc32(0, data + off, len), ~c);
            unsigned cut = len / 3;
            CHECK_EQ(memif_ct_crc32(memif_ct_crc32(0, data + off, cut), data + off + cut, len - cut), ~c);
        }
}

static void test_framegen_init(void)
{
    uint8_t t[100];
    memif_ct_framegen_t g;
    make_template(t, 100);
    CHECK_INT(memif_ct_framegen_init(&g, t, 100, pattern, sizeof pattern), MEMIF_CT_OK);
    CHECK_EQ(g.size, 100u);
    CHECK_INT(memif_ct_framegen_init(NULL, t, 100, pattern, sizeof pattern), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_framegen_init(&g, NULL, 100, pattern, sizeof pattern), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_framegen_init(&g, t, 100, NULL, sizeof pattern), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_framegen_init(&g, t, 59, pattern, sizeof pattern), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_framegen_init(&g, t, 99, pattern, sizeof pattern), MEMIF_CT_ERR_ARG); /* headers say 100 */
    CHECK_INT(memif_ct_framegen_init(&g, t, 100, pattern, PERIOD + 39), MEMIF_CT_ERR_ARG); /* pattern short */
    t[42] = 'X';
    CHECK_INT(memif_ct_framegen_init(&g, t, 100, pattern, sizeof pattern), MEMIF_CT_ERR_ARG);
    make_template(t, 100);
    t[40] = 1; /* a UDP checksum stamping would not keep right */
    CHECK_INT(memif_ct_framegen_init(&g, t, 100, pattern, sizeof pattern), MEMIF_CT_ERR_ARG);
}

static void test_stamp_and_verify(void)
{
    static const uint32_t sizes[] = {60, 61, 64, 128, 1500, 2048};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint32_t size = sizes[k];
        uint8_t *t = malloc(size);
        REQUIRE(t);
        make_template(t, size);
        memif_ct_framegen_t g;
        REQUIRE(memif_ct_framegen_init(&g, t, size, pattern, sizeof pattern) == MEMIF_CT_OK);
        uint32_t n = 7;
        size_t total = (size_t)n * size;
        uint8_t *out = malloc(total);
        REQUIRE(out);
        CHECK_INT(memif_ct_frames_stamp_packed(&g, 1000, n, out, total), (int)n);
        CHECK_INT(memif_ct_frames_stamp_packed(&g, 1000, n, out, total - 1), MEMIF_CT_ERR_TOO_BIG);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t *f = out + (size_t)i * size;
            uint64_t seq = 0;
            CHECK_INT(memif_ct_frame_verify(f, size, &seq), MEMIF_CT_FRAME_OK);
            CHECK_EQ(seq, 1000u + i);
            CHECK_MEM(f, t, 48);
            CHECK_MEM(f + 60, pattern + (1000 + i) % PERIOD, size - 60);
            /* the crc covers seq then the payload */
            uint32_t crc = memif_ct_crc32(memif_ct_crc32(0, f + 48, 8), f + 60, size - 60);
            CHECK_EQ((uint32_t)f[56] << 24 | (uint32_t)f[57] << 16 | (uint32_t)f[58] << 8 | f[59], crc);
        }
        /* into addresses: the same bytes */
        uint8_t *one = malloc(size);
        uint8_t *two = malloc(size);
        REQUIRE(one && two);
        uint8_t *addrs[2] = {one, two};
        CHECK_INT(memif_ct_frames_stamp_addrs(&g, 1003, addrs, 2), 2);
        CHECK_MEM(one, out + 3 * (size_t)size, size);
        CHECK_MEM(two, out + 4 * (size_t)size, size);
        addrs[1] = NULL;
        CHECK_INT(memif_ct_frames_stamp_addrs(&g, 0, addrs, 2), MEMIF_CT_ERR_NULL);
        CHECK_INT(memif_ct_frames_stamp_addrs(&g, UINT64_MAX, addrs, 2), MEMIF_CT_ERR_OVERFLOW);
        CHECK_INT(memif_ct_frames_stamp_packed(&g, UINT64_MAX - 6, n, out, total), (int)n);
        CHECK_INT(memif_ct_frames_stamp_packed(&g, UINT64_MAX - 5, n, out, total), MEMIF_CT_ERR_OVERFLOW);
        free(one);
        free(two);
        free(out);
        free(t);
    }
}

static void test_verify_verdicts(void)
{
    uint8_t t[64], f[64];
    memif_ct_framegen_t g;
    make_template(t, 64);
    REQUIRE(memif_ct_framegen_init(&g, t, 64, pattern, sizeof pattern) == MEMIF_CT_OK);
    REQUIRE(memif_ct_frames_stamp_packed(&g, 5, 1, f, sizeof f) == 1);
    uint8_t c[64];
#define VERDICT(len) memif_ct_frame_verify(c, (len), NULL)
    memcpy(c, f, 64);
    CHECK_INT(VERDICT(47), MEMIF_CT_FRAME_NOT_OURS);
    CHECK_INT(VERDICT(59), MEMIF_CT_FRAME_SHORT);
    CHECK_INT(memif_ct_frame_verify(NULL, 0, NULL), MEMIF_CT_FRAME_NOT_OURS);
    CHECK_INT(memif_ct_frame_verify(NULL, 1, NULL), MEMIF_CT_ERR_NULL);
    c[42] = 'x';
    c[43] = 'x';
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_MAGIC);
    c[44] = 'x';
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_NOT_OURS);
    memcpy(c, f, 64);
    c[13] = 1;
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_ETHERTYPE);
    memcpy(c, f, 64);
    c[14 + 9] = 6;
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_IP_HEADER);
    memcpy(c, f, 64);
    c[14 + 1] = 4;
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_IP_CHECKSUM);
    memcpy(c, f, 64);
    CHECK_INT(VERDICT(63), MEMIF_CT_FRAME_BAD_IP_LENGTH); /* the IPv4 length runs past the frame */
    memcpy(c, f, 64);
    c[38 + 1] ^= 1;
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_UDP_LENGTH);
    memcpy(c, f, 64);
    c[40] = 0x12; /* a non-zero UDP checksum that is wrong */
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_UDP_CHECKSUM);
    memcpy(c, f, 64);
    c[63] ^= 0x80;
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_BAD_CRC);
    memcpy(c, f, 64);
    c[0] ^= 0xFF; /* MACs are not covered: a reflector may rewrite them */
    c[8] ^= 0xFF;
    c[34] ^= 0xFF; /* nor the ports */
    CHECK_INT(VERDICT(64), MEMIF_CT_FRAME_OK);
#undef VERDICT
    CHECK(strcmp(memif_ct_frame_verdict_str(MEMIF_CT_FRAME_OK), "ok") == 0);
    CHECK(strcmp(memif_ct_frame_verdict_str(MEMIF_CT_FRAME_VERDICTS), "unknown verdict") == 0);
    CHECK(strcmp(memif_ct_frame_verdict_str(-1), "unknown verdict") == 0);
}

/* Frames with the given seqs packed into *out (malloc'd, exactly sized); lengths[i] = 64. */
static size_t pack_seqs(const memif_ct_framegen_t *g, const uint64_t *seqs, uint32_t n, uint8_t **out,
                        uint32_t *lengths)
{
    size_t total = (size_t)n * g->size;
    *out = malloc(total ? total : 1);
    for (uint32_t i = 0; i < n; i++) {
        memif_ct_frames_stamp_packed(g, seqs[i], 1, *out + (size_t)i * g->size, g->size);
        lengths[i] = g->size;
    }
    return total;
}

static void test_checker(void)
{
    uint8_t t[64];
    memif_ct_framegen_t g;
    make_template(t, 64);
    REQUIRE(memif_ct_framegen_init(&g, t, 64, pattern, sizeof pattern) == MEMIF_CT_OK);
    memif_ct_checker_t chk;
    uint64_t high[2];
    uint8_t *bitmap = malloc(2); /* 10 seqs: 0..9 */
    REQUIRE(bitmap);
    CHECK_INT(memif_ct_checker_init(&chk, bitmap, 0, 10, high, 0, MEMIF_CT_CHECK_FIXED), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_checker_init(&chk, bitmap, 3, 10, high, 2, MEMIF_CT_CHECK_FIXED), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_checker_init(&chk, NULL, 0, 10, high, 2, MEMIF_CT_CHECK_FIXED), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_checker_init(&chk, bitmap, 0, 10, high, 2, MEMIF_CT_CHECK_FIXED), MEMIF_CT_OK);
    uint64_t seqs[] = {0, 1, 3, 2, 3, 10, 9};
    uint32_t lengths[7];
    uint8_t *data;
    size_t total = pack_seqs(&g, seqs, 7, &data, lengths);
    data[4 * 64 + 63] ^= 1; /* seq 3's second copy is damaged: corrupted, not a duplicate */
    uint8_t verdicts[7];
    uint64_t got[7];
    CHECK_INT(memif_ct_check_packed(&chk, 0, data, total, lengths, 7, verdicts, got), 7);
    CHECK_EQ(chk.frames, 7u);
    CHECK_EQ(chk.bytes, 7u * 64);
    CHECK_EQ(chk.corrupted, 1u);
    CHECK_EQ(chk.last_corrupt, (uint32_t)MEMIF_CT_FRAME_BAD_CRC);
    CHECK_EQ(chk.unique, 5u);     /* 0 1 3 2 9 */
    CHECK_EQ(chk.duplicates, 1u); /* 10: not one this run sent */
    CHECK_EQ(chk.out_of_order, 1u); /* 2 after 3 */
    CHECK_EQ(chk.lowest, 0u);
    CHECK_EQ(chk.highest, 9u);
    CHECK_EQ(verdicts[4], (uint8_t)MEMIF_CT_FRAME_BAD_CRC);
    CHECK_EQ(got[6], 9u);
    /* order is per queue: 1 on queue 1 after 9 on queue 0 is in order, but a duplicate */
    CHECK_INT(memif_ct_check_packed(&chk, 1, data + 64, 64, lengths, 1, NULL, NULL), 1);
    CHECK_EQ(chk.duplicates, 2u);
    CHECK_EQ(chk.out_of_order, 1u);
    CHECK_INT(memif_ct_check_packed(&chk, 2, data, total, lengths, 1, NULL, NULL), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_check_packed(&chk, 0, data, total - 1, lengths, 7, NULL, NULL), MEMIF_CT_ERR_RANGE);
    CHECK_INT(memif_ct_check_packed(&chk, 0, NULL, total, lengths, 7, NULL, NULL), MEMIF_CT_ERR_NULL);
    /* the same frames where they lie */
    memif_ct_pkt_t pkts[7];
    for (uint32_t i = 0; i < 7; i++)
        pkts[i] = (memif_ct_pkt_t){data + (size_t)i * 64, 64, 1, 0};
    CHECK_INT(memif_ct_checker_init(&chk, bitmap, 0, 10, high, 2, MEMIF_CT_CHECK_FIXED), MEMIF_CT_OK);
    CHECK_INT(memif_ct_check_pkts(&chk, 0, pkts, 7, NULL, NULL), 7);
    CHECK_EQ(chk.unique, 5u);
    CHECK_EQ(chk.out_of_order, 1u);
    /* A refused call counts nothing: a C review's retry after a lengths error found the frames
     * before it counted twice (duplicates). */
    CHECK_INT(memif_ct_checker_init(&chk, bitmap, 0, 10, high, 2, MEMIF_CT_CHECK_FIXED), MEMIF_CT_OK);
    uint32_t bad[7];
    memcpy(bad, lengths, sizeof bad);
    bad[6] = 65;
    CHECK_INT(memif_ct_check_packed(&chk, 0, data, total, bad, 7, NULL, NULL), MEMIF_CT_ERR_RANGE);
    pkts[5].addr = NULL;
    CHECK_INT(memif_ct_check_pkts(&chk, 0, pkts, 7, NULL, NULL), MEMIF_CT_ERR_NULL);
    CHECK_EQ(chk.frames, 0u);
    CHECK_INT(memif_ct_check_packed(&chk, 0, data, total, lengths, 7, NULL, NULL), 7);
    CHECK_EQ(chk.duplicates, 1u);
    CHECK_EQ(chk.unique, 5u);
    /* no data, one empty frame: checked, not an offset of NULL */
    uint32_t zero = 0;
    CHECK_INT(memif_ct_check_packed(&chk, 0, NULL, 0, &zero, 1, NULL, NULL), 1);
    /* a window whose bytes would wrap: refused, not a 0-byte bitmap read at bit 1e6 */
    CHECK_INT(memif_ct_checker_init(&chk, bitmap, 0, UINT64_MAX, high, 2, 0), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_checker_set_window(&chk, bitmap, 0, UINT64_MAX - 2), MEMIF_CT_ERR_ARG);
    free(data);
    free(bitmap);
}

static void test_checker_window(void)
{
    uint8_t t[64];
    memif_ct_framegen_t g;
    make_template(t, 64);
    REQUIRE(memif_ct_framegen_init(&g, t, 64, pattern, sizeof pattern) == MEMIF_CT_OK);
    memif_ct_checker_t chk;
    uint64_t high[1];
    uint8_t *small = malloc(1);
    REQUIRE(small);
    CHECK_INT(memif_ct_checker_init(&chk, small, 8, 8, high, 1, 0), MEMIF_CT_OK);
    uint64_t seqs[] = {8, 15, 16, 8};
    uint32_t lengths[4];
    uint8_t *data;
    size_t total = pack_seqs(&g, seqs, 4, &data, lengths);
    CHECK_INT(memif_ct_check_packed(&chk, 0, data, total, lengths, 4, NULL, NULL), 2);
    CHECK_EQ(chk.need_seq, 16u);
    CHECK_EQ(chk.frames, 2u);
    /* the caller grows the window to [0, 24), keeping the bits seen */
    uint8_t *big = calloc(3, 1);
    REQUIRE(big);
    big[1] = small[0];
    CHECK_INT(memif_ct_checker_set_window(&chk, big, 4, 24), MEMIF_CT_ERR_ARG);
    CHECK_INT(memif_ct_checker_set_window(&chk, big, 0, 24), MEMIF_CT_OK);
    CHECK_INT(memif_ct_check_packed(&chk, 0, data + 128, total - 128, lengths + 2, 2, NULL, NULL), 2);
    CHECK_EQ(chk.unique, 3u);
    CHECK_EQ(chk.duplicates, 1u);
    CHECK_EQ(chk.frames, 4u);
    free(data);
    free(small);
    free(big);
}

static void test_macswap(void)
{
    uint8_t d[12 + 11];
    for (unsigned i = 0; i < sizeof d; i++)
        d[i] = (uint8_t)i;
    uint32_t lengths[2] = {12, 11};
    CHECK_INT(memif_ct_macswap_packed(d, sizeof d, lengths, 2), 2);
    CHECK_EQ(d[0], 6u);
    CHECK_EQ(d[6], 0u);
    CHECK_EQ(d[12], 12u); /* shorter than 12 bytes: left alone */
    CHECK_INT(memif_ct_macswap_packed(d, sizeof d - 1, lengths, 2), MEMIF_CT_ERR_RANGE);
    CHECK_EQ(d[0], 6u); /* refused: frame 0 not swapped back either */
    CHECK_INT(memif_ct_macswap_packed(NULL, 0, lengths, 1), MEMIF_CT_ERR_NULL);
    CHECK_INT(memif_ct_macswap_packed(NULL, 0, NULL, 0), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (unsigned i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)(i * 2654435761u >> 13);
    RUN("crc32", test_crc32());
    RUN("framegen_init", test_framegen_init());
    RUN("stamp and verify", test_stamp_and_verify());
    RUN("verdicts", test_verify_verdicts());
    RUN("checker", test_checker());
    RUN("checker window", test_checker_window());
    RUN("macswap", test_macswap());
    return mt_summary();
}
