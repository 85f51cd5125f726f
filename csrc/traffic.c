/* traffic.c - memif-ct's test frames in whole bursts: stamping them from a template and
 * checking them, with the verifier's bookkeeping (see "traffic generation and checking" in
 * memif_ct.h). The Python reference is memif_ct/frames.py; tests/test_traffic_c.py holds the two
 * to the same bytes and verdicts. Stamping and checking only read and write frames in memory
 * they are given, so C programs can use them with any burst API; memif_ct_tx_frames and
 * memif_ct_tx_pkts at the end fill a queue's TX buffers through the queue API. Nothing allocates. */
#include "memif_ct.h"
#include "internal.h"

#include <limits.h>
#include <string.h>

#define ETH_HEADER 14u
#define IP_HEADER 20u
#define UDP_HEADER 8u
#define TRAILER (MEMIF_CT_FRAME_PATTERN_OFFSET - MEMIF_CT_FRAME_MAGIC_OFFSET)
#define MAGIC_TOLERANCE 2u /* a magic this close is "ours, damaged", not someone else's frame */

static const uint8_t magic[6] = {'M', 'E', 'M', 'C', 'T', '1'};

/* ---- checksums ---- */

/* zlib's CRC-32 (reflected, polynomial 0xEDB88320): the state after one byte. */
static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,
};

/* Slicing-by-8 (eight bytes a step, eight independent lookups): slice[k][b] is the CRC state
 * after byte b followed by k zero bytes. Filled from crc_table once, when the library loads. */
static uint32_t slice[8][256];

__attribute__((constructor)) static void crc_slices_init(void)
{
    for (unsigned b = 0; b < 256; b++) {
        uint32_t c = crc_table[b];
        slice[0][b] = c;
        for (unsigned k = 1; k < 8; k++) {
            c = crc_table[c & 0xFFu] ^ (c >> 8);
            slice[k][b] = c;
        }
    }
}

/* The raw (not inverted) CRC state after len more bytes; in the library so that stamping and
 * checking call it directly rather than through the exported symbol. */
static inline uint32_t crc_update(uint32_t c, const uint8_t *p, size_t len)
{
    for (; len >= 8; p += 8, len -= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
        c = slice[7][lo & 0xFFu] ^ slice[6][(lo >> 8) & 0xFFu] ^ slice[5][(lo >> 16) & 0xFFu] ^ slice[4][lo >> 24] ^
            slice[3][hi & 0xFFu] ^ slice[2][(hi >> 8) & 0xFFu] ^ slice[1][(hi >> 16) & 0xFFu] ^ slice[0][hi >> 24];
    }
    if (len >= 4) { /* slicing-by-4 with the same tables: a 64-byte frame's CRC ends in 4 bytes */
        c ^= (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        c = slice[3][c & 0xFFu] ^ slice[2][(c >> 8) & 0xFFu] ^ slice[1][(c >> 16) & 0xFFu] ^ slice[0][c >> 24];
        p += 4;
        len -= 4;
    }
    for (; len; p++, len--)
        c = crc_table[(c ^ *p) & 0xFFu] ^ (c >> 8);
    return c;
}

uint32_t memif_ct_crc32(uint32_t crc, const void *data, size_t len)
{
    if (!data)
        return crc;
    return ~crc_update(~crc, (const uint8_t *)data, len);
}

/* The payload CRC of a frame: over its sequence number, then its pattern bytes. */
static inline uint32_t frame_crc(const uint8_t *seq, const uint8_t *payload, size_t len)
{
    return ~crc_update(crc_update(~0u, seq, 8), payload, len);
}

/* RFC 1071 sum of len bytes as big-endian u16 words (odd tail padded with 0), not yet complemented.
 * Four bytes a load: a sum of 32-bit words folds to the same 16-bit ones' complement sum, and a
 * sum taken in the machine's byte order is the big-endian one byte-swapped (RFC 1071, 2(B)). */
static uint64_t sum16(const uint8_t *p, size_t len)
{
    uint64_t sum = 0;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, sizeof w);
        sum += w;
    }
    uint64_t tail = 0;
    for (; i + 1 < len; i += 2)
        tail += (uint64_t)((p[i] << 8) | p[i + 1]);
    if (i < len)
        tail += (uint64_t)p[i] << 8;
    while (sum >> 16)
        sum = (sum & 0xFFFFu) + (sum >> 16);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    sum = ((sum & 0xFFu) << 8) | (sum >> 8);
#endif
    return sum + tail;
}

/* The Internet checksum of a sum: 0 when what was summed holds its own correct checksum. */
static uint16_t fold(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFFu) + (sum >> 16);
    return (uint16_t)(~sum & 0xFFFFu);
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t be64(const uint8_t *p) { return ((uint64_t)be32(p) << 32) | be32(p + 4); }

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

/* ---- verdicts ---- */

static const char *const verdict_names[MEMIF_CT_FRAME_VERDICTS] = {
    "ok",
    "not ours",
    "frame shorter than 60 bytes",
    "magic damaged",
    "ethertype is not IPv4",
    "IPv4 version/IHL or protocol damaged",
    "IPv4 header checksum mismatch",
    "IPv4 total length does not fit the frame",
    "UDP length disagrees with IPv4 length",
    "UDP checksum mismatch",
    "payload crc32 mismatch",
};

const char *memif_ct_frame_verdict_str(int verdict)
{
    if (verdict < 0 || verdict >= MEMIF_CT_FRAME_VERDICTS)
        return "unknown verdict";
    return verdict_names[verdict];
}

/* The checks of frames.verify_udp_frame, in its order, so the first failure names the same cause. */
static int verify(const uint8_t *f, size_t len, uint64_t *seq)
{
    unsigned distance = 6;
    if (len >= MEMIF_CT_FRAME_SEQ_OFFSET) {
        distance = 0; /* an intact magic in one compare (two loads), a damaged one byte by byte */
        if (memcmp(f + MEMIF_CT_FRAME_MAGIC_OFFSET, magic, sizeof magic) != 0)
            for (unsigned i = 0; i < sizeof magic; i++)
                distance += f[MEMIF_CT_FRAME_MAGIC_OFFSET + i] != magic[i];
    }
    if (distance > MAGIC_TOLERANCE)
        return MEMIF_CT_FRAME_NOT_OURS;
    if (len < MEMIF_CT_FRAME_MIN_SIZE)
        return MEMIF_CT_FRAME_SHORT;
    if (distance)
        return MEMIF_CT_FRAME_BAD_MAGIC;
    if (f[12] != 0x08 || f[13] != 0x00)
        return MEMIF_CT_FRAME_BAD_ETHERTYPE;
    const uint8_t *ip = f + ETH_HEADER;
    if (ip[0] != 0x45 || ip[9] != 17)
        return MEMIF_CT_FRAME_BAD_IP_HEADER;
    if (fold(sum16(ip, IP_HEADER)) != 0)
        return MEMIF_CT_FRAME_BAD_IP_CHECKSUM;
    size_t ip_len = be16(ip + 2);
    size_t end = ETH_HEADER + ip_len;
    /* Bytes past the IPv4 length are Ethernet padding: ours has none, others may add it. */
    if (ip_len < IP_HEADER + UDP_HEADER + TRAILER || end > len)
        return MEMIF_CT_FRAME_BAD_IP_LENGTH;
    const uint8_t *udp = ip + IP_HEADER;
    if (be16(udp + 4) != ip_len - IP_HEADER)
        return MEMIF_CT_FRAME_BAD_UDP_LENGTH;
    if (be16(udp + 6) != 0) {
        /* pseudo header: addresses, zero, protocol, UDP length; then the datagram */
        uint64_t sum = sum16(ip + 12, 8) + 17u + (ip_len - IP_HEADER) + sum16(udp, ip_len - IP_HEADER);
        if (fold(sum) != 0)
            return MEMIF_CT_FRAME_BAD_UDP_CHECKSUM;
    }
    uint32_t crc = frame_crc(f + MEMIF_CT_FRAME_SEQ_OFFSET, f + MEMIF_CT_FRAME_PATTERN_OFFSET,
                             end - MEMIF_CT_FRAME_PATTERN_OFFSET);
    if (crc != be32(f + MEMIF_CT_FRAME_CRC_OFFSET))
        return MEMIF_CT_FRAME_BAD_CRC;
    if (seq)
        *seq = be64(f + MEMIF_CT_FRAME_SEQ_OFFSET);
    return MEMIF_CT_FRAME_OK;
}

int memif_ct_frame_verify(const uint8_t *frame, size_t len, uint64_t *seq)
{
    if (!frame && len)
        return MEMIF_CT_ERR_NULL;
    return verify(frame, len, seq);
}

/* ---- stamping ---- */

int memif_ct_framegen_init(memif_ct_framegen_t *gen, const uint8_t *tmpl, uint32_t tmpl_size,
                           const uint8_t *pattern, uint32_t pattern_size)
{
    if (!gen || !tmpl || !pattern)
        return MEMIF_CT_ERR_NULL;
    if (tmpl_size < MEMIF_CT_FRAME_MIN_SIZE || tmpl_size > MEMIF_CT_FRAME_MAX_SIZE)
        return MEMIF_CT_ERR_ARG;
    if (pattern_size < MEMIF_CT_FRAME_PATTERN_PERIOD + (tmpl_size - MEMIF_CT_FRAME_PATTERN_OFFSET))
        return MEMIF_CT_ERR_ARG;
    /* Every frame stamped from it must verify: the headers it copies must describe this size,
     * and the UDP checksum must be 0 (stamping does not recompute it). */
    const uint8_t *ip = tmpl + ETH_HEADER;
    if (memcmp(tmpl + MEMIF_CT_FRAME_MAGIC_OFFSET, magic, sizeof magic) != 0 || tmpl[12] != 0x08 ||
        tmpl[13] != 0x00 || ip[0] != 0x45 || ip[9] != 17 || fold(sum16(ip, IP_HEADER)) != 0 ||
        be16(ip + 2) != tmpl_size - ETH_HEADER || be16(ip + IP_HEADER + 4) != tmpl_size - ETH_HEADER - IP_HEADER ||
        be16(ip + IP_HEADER + 6) != 0)
        return MEMIF_CT_ERR_ARG;
    gen->tmpl = tmpl;
    gen->pattern = pattern;
    gen->size = tmpl_size;
    gen->pattern_size = pattern_size;
    return MEMIF_CT_OK;
}

/* movsb: shm_copy_movsb() for a frame in shared memory, 0 for the caller's own memory. */
static void stamp(const memif_ct_framegen_t *gen, uint8_t *f, uint64_t seq, int movsb)
{
    uint32_t payload = gen->size - MEMIF_CT_FRAME_PATTERN_OFFSET;
    const uint8_t *window = gen->pattern + seq % MEMIF_CT_FRAME_PATTERN_PERIOD;
    copy_bytes(f, gen->tmpl, MEMIF_CT_FRAME_SEQ_OFFSET);
    put_be64(f + MEMIF_CT_FRAME_SEQ_OFFSET, seq);
    shm_copy(f + MEMIF_CT_FRAME_PATTERN_OFFSET, window, payload, movsb);
    put_be32(f + MEMIF_CT_FRAME_CRC_OFFSET, frame_crc(f + MEMIF_CT_FRAME_SEQ_OFFSET, window, payload));
}

/* The checks both stamp calls share: a generator memif_ct_framegen_init() set up, a count that
 * fits the int result, seqs that fit u64. */
static int stamp_check(const memif_ct_framegen_t *gen, uint64_t first_seq, uint32_t count)
{
    if (!gen || !gen->tmpl || !gen->pattern)
        return MEMIF_CT_ERR_NULL;
    if (gen->size < MEMIF_CT_FRAME_MIN_SIZE || gen->size > MEMIF_CT_FRAME_MAX_SIZE ||
        gen->pattern_size < MEMIF_CT_FRAME_PATTERN_PERIOD + (gen->size - MEMIF_CT_FRAME_PATTERN_OFFSET) ||
        count > INT_MAX)
        return MEMIF_CT_ERR_ARG;
    if (count && first_seq > UINT64_MAX - (count - 1))
        return MEMIF_CT_ERR_OVERFLOW;
    return MEMIF_CT_OK;
}

int memif_ct_frames_stamp_packed(const memif_ct_framegen_t *gen, uint64_t first_seq, uint32_t count, uint8_t *out,
                                 size_t out_size)
{
    int rc = stamp_check(gen, first_seq, count);
    if (rc != MEMIF_CT_OK)
        return rc;
    if (count && !out)
        return MEMIF_CT_ERR_NULL;
    if ((uint64_t)count * gen->size > out_size)
        return MEMIF_CT_ERR_TOO_BIG;
    for (uint32_t i = 0; i < count; i++)
        stamp(gen, out + (size_t)i * gen->size, first_seq + i, 0);
    return (int)count;
}

int memif_ct_frames_stamp_addrs(const memif_ct_framegen_t *gen, uint64_t first_seq, uint8_t *const *addrs,
                                uint32_t count)
{
    int rc = stamp_check(gen, first_seq, count);
    if (rc != MEMIF_CT_OK)
        return rc;
    if (count && !addrs)
        return MEMIF_CT_ERR_NULL;
    for (uint32_t i = 0; i < count; i++)
        if (!addrs[i])
            return MEMIF_CT_ERR_NULL;
    const int movsb = shm_copy_movsb(); /* (zero-copy TX buffers, as a rule) */
    for (uint32_t i = 0; i < count; i++)
        stamp(gen, addrs[i], first_seq + i, movsb);
    return (int)count;
}

/* ---- the verifier's bookkeeping ---- */

int memif_ct_checker_set_window(memif_ct_checker_t *chk, uint8_t *bitmap, uint64_t window_base,
                                uint64_t window_bits)
{
    if (!chk || (window_bits && !bitmap))
        return MEMIF_CT_ERR_NULL;
    /* (window_bits + 7) / 8 bytes of bitmap: that count must neither wrap nor pass size_t */
    if (window_base % 8 || window_bits > UINT64_MAX - window_base || window_bits > UINT64_MAX - 7 ||
        (window_bits + 7) / 8 > SIZE_MAX)
        return MEMIF_CT_ERR_ARG;
    chk->bitmap = bitmap;
    chk->window_base = window_base;
    chk->window_bits = window_bits;
    return MEMIF_CT_OK;
}

int memif_ct_checker_init(memif_ct_checker_t *chk, uint8_t *bitmap, uint64_t window_base, uint64_t window_bits,
                          uint64_t *queue_high, uint32_t num_queues, uint32_t flags)
{
    if (!chk || !queue_high)
        return MEMIF_CT_ERR_NULL;
    if (num_queues == 0 || (flags & ~MEMIF_CT_CHECK_FIXED))
        return MEMIF_CT_ERR_ARG;
    memif_ct_checker_t fresh;
    memset(&fresh, 0, sizeof fresh);
    int rc = memif_ct_checker_set_window(&fresh, bitmap, window_base, window_bits);
    if (rc != MEMIF_CT_OK)
        return rc;
    if (window_bits)
        memset(bitmap, 0, (size_t)((window_bits + 7) / 8));
    for (uint32_t q = 0; q < num_queues; q++)
        queue_high[q] = UINT64_MAX;
    fresh.queue_high = queue_high;
    fresh.num_queues = num_queues;
    fresh.flags = flags;
    *chk = fresh;
    return MEMIF_CT_OK;
}

/* Account one frame. Returns 0, or 1 to stop before it: its seq lies outside a growable window. */
static int account(memif_ct_checker_t *chk, uint32_t queue, const uint8_t *f, uint32_t len, uint8_t *verdict,
                   uint64_t *seq_out)
{
    uint64_t seq = 0;
    int v = verify(f, len, &seq);
    if (v == MEMIF_CT_FRAME_OK) {
        uint64_t bit = seq - chk->window_base;
        int inside = seq >= chk->window_base && bit < chk->window_bits;
        if (!inside && !(chk->flags & MEMIF_CT_CHECK_FIXED)) {
            chk->need_seq = seq;
            return 1;
        }
        if (!inside || (chk->bitmap[bit / 8] >> (bit % 8)) & 1u) {
            chk->duplicates++; /* seen already, or (FIXED) not one this run sent */
        } else {
            chk->bitmap[bit / 8] |= (uint8_t)(1u << (bit % 8));
            uint64_t *high = &chk->queue_high[queue];
            if (*high != UINT64_MAX && seq < *high)
                chk->out_of_order++;
            else
                *high = seq;
            if (!chk->unique || seq < chk->lowest)
                chk->lowest = seq;
            if (!chk->unique || seq > chk->highest)
                chk->highest = seq;
            chk->unique++;
        }
    } else if (v == MEMIF_CT_FRAME_NOT_OURS) {
        chk->not_ours++;
    } else {
        chk->corrupted++;
        chk->last_corrupt = (uint32_t)v;
    }
    chk->frames++;
    chk->bytes += len;
    if (verdict)
        *verdict = (uint8_t)v;
    if (seq_out)
        *seq_out = v == MEMIF_CT_FRAME_OK ? seq : 0;
    return 0;
}

static int check_args(const memif_ct_checker_t *chk, uint32_t queue, const void *frames, uint32_t count)
{
    if (!chk || (count && !frames) || !chk->queue_high || (chk->window_bits && !chk->bitmap))
        return MEMIF_CT_ERR_NULL;
    if (queue >= chk->num_queues || count > INT_MAX)
        return MEMIF_CT_ERR_ARG;
    return MEMIF_CT_OK;
}

int memif_ct_check_packed(memif_ct_checker_t *chk, uint32_t queue, const uint8_t *data, size_t size,
                          const uint32_t *lengths, uint32_t count, uint8_t *verdicts, uint64_t *seqs)
{
    int rc = check_args(chk, queue, lengths, count);
    if (rc != MEMIF_CT_OK)
        return rc;
    if (size && !data)
        return MEMIF_CT_ERR_NULL;
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) { /* all checked before any is counted */
        if (lengths[i] > size - off)
            return MEMIF_CT_ERR_RANGE;
        off += lengths[i];
    }
    off = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *f = data ? data + off : NULL; /* (no data: every length is 0) */
        if (account(chk, queue, f, lengths[i], verdicts ? verdicts + i : NULL, seqs ? seqs + i : NULL))
            return (int)i;
        off += lengths[i];
    }
    return (int)count;
}

int memif_ct_check_pkts(memif_ct_checker_t *chk, uint32_t queue, const memif_ct_pkt_t *pkts, uint32_t count,
                        uint8_t *verdicts, uint64_t *seqs)
{
    int rc = check_args(chk, queue, pkts, count);
    if (rc != MEMIF_CT_OK)
        return rc;
    for (uint32_t i = 0; i < count; i++) /* all checked before any is counted */
        if (!pkts[i].addr && pkts[i].length)
            return MEMIF_CT_ERR_NULL;
    for (uint32_t i = 0; i < count; i++) {
        if (account(chk, queue, pkts[i].addr, pkts[i].length, verdicts ? verdicts + i : NULL, seqs ? seqs + i : NULL))
            return (int)i;
    }
    return (int)count;
}

/* ---- reflecting ---- */

/* Swap an Ethernet frame's destination and source MACs; a frame shorter than both is left. */
static inline void swap_macs(uint8_t *frame, uint32_t length)
{
    if (length < 12)
        return;
    uint8_t mac[6];
    memcpy(mac, frame, 6);
    memmove(frame, frame + 6, 6);
    memcpy(frame + 6, mac, 6);
}

int memif_ct_macswap_packed(uint8_t *data, size_t size, const uint32_t *lengths, uint32_t count)
{
    if (count && (!data || !lengths))
        return MEMIF_CT_ERR_NULL;
    if (count > INT_MAX)
        return MEMIF_CT_ERR_ARG;
    size_t off = 0;
    for (uint32_t i = 0; i < count; i++) { /* all checked before any is swapped */
        if (lengths[i] > size - off)
            return MEMIF_CT_ERR_RANGE;
        off += lengths[i];
    }
    off = 0;
    for (uint32_t i = 0; i < count; i++) {
        swap_macs(data + off, lengths[i]);
        off += lengths[i];
    }
    return (int)count;
}

/* ---- the buffer API in one call: frames and received packets straight into TX buffers ---- */

#define TX_CHUNK 64u

/* What goes into TX buffer i of a chunk (frame first + i, or packet i of a list). */
typedef struct {
    const memif_ct_framegen_t *gen; /* frames: the generator, ... */
    uint64_t first_seq;             /*   ... and the seq of the call's first frame */
    const memif_ct_pkt_t *pkts;     /* packets: where each lies, and ... */
    int macswap;                    /*   ... whether to swap its MACs on the way */
    int movsb;                      /* shm_copy's movsb for each copy (see memif_ct_tx_pkts) */
} tx_fill_t;

static uint32_t fill_length(const tx_fill_t *f, uint32_t i)
{
    return f->gen ? f->gen->size : f->pkts[i].length;
}

/* Write item `index` (of the whole call) into buf. */
static void fill_one(const tx_fill_t *f, uint32_t index, uint8_t *buf)
{
    if (f->gen) {
        stamp(f->gen, buf, f->first_seq + index, f->movsb);
        return;
    }
    const memif_ct_pkt_t *p = &f->pkts[index];
    shm_copy(buf, p->addr, p->length, f->movsb);
    if (f->macswap)
        swap_macs(buf, p->length);
}

/* Client with a pool: take buffers, fill them, publish them by index. */
static int tx_fill_client(memif_ct_queue_t *q, const tx_fill_t *f, uint32_t count)
{
    uint32_t size = memif_ct_pool_buffer_size(q->pool), fits = 0;
    while (fits < count && fill_length(f, fits) && fill_length(f, fits) <= size)
        fits++; /* a prefix that fits one buffer each */
    if (fits == 0)
        return MEMIF_CT_ERR_TOO_BIG;
    count = fits;
    memif_ct_queue_reclaim(q);
    uint32_t sent = 0;
    while (sent < count) {
        uint32_t idx[TX_CHUNK], lens[TX_CHUNK];
        uint32_t want = count - sent < TX_CHUNK ? count - sent : TX_CHUNK;
        uint32_t got = memif_ct_pool_alloc(q->pool, idx, want);
        memif_ct_pool_cursor_t cur; /* where each buffer lies, the pool read once: only located */
        memif_ct_pool_cursor_init(&cur, q->pool);
        for (uint32_t i = 0; i < got; i++) {
            uint16_t region;
            uint64_t offset;
            fill_one(f, sent + i, memif_ct_pool_cursor_locate(&cur, idx[i], &region, &offset));
            lens[i] = fill_length(f, sent + i);
        }
        int rc = got ? memif_ct_tx_buffers(q, idx, lens, got) : 0;
        uint32_t n = rc > 0 ? (uint32_t)rc : 0;
        if (n < got)
            memif_ct_pool_free(q->pool, idx + n, got - n);
        if (rc < 0)
            return sent ? (int)sent : rc;
        sent += n;
        if (n < want)
            break; /* out of buffers or of free slots */
    }
    return (int)sent;
}

/* Server on M2S: fill the buffers the client posted, in ring order. */
static int tx_fill_server(memif_ct_queue_t *q, const tx_fill_t *f, uint32_t count)
{
    if (memif_ct_tx_reserved(q))
        return MEMIF_CT_ERR_STATE; /* the application holds reserved buffers: they go first */
    uint32_t sent = 0;
    while (sent < count) {
        memif_ct_buf_t bufs[TX_CHUNK];
        uint32_t lens[TX_CHUNK];
        uint32_t want = count - sent < TX_CHUNK ? count - sent : TX_CHUNK;
        int rc = memif_ct_tx_reserve(q, bufs, want);
        if (rc <= 0)
            return sent ? (int)sent : rc;
        uint32_t got = (uint32_t)rc, fit = 0;
        while (fit < got && fill_length(f, sent + fit) <= bufs[fit].capacity)
            fit++;
        if (fit < got)
            memif_ct_tx_unreserve(q, got - fit);
        if (fit == 0)
            return sent ? (int)sent : MEMIF_CT_ERR_TOO_BIG; /* the client posted a smaller buffer */
        for (uint32_t i = 0; i < fit; i++) {
            fill_one(f, sent + i, bufs[i].addr);
            lens[i] = fill_length(f, sent + i);
        }
        rc = memif_ct_tx_commit(q, lens, fit);
        if (rc < 0) {
            memif_ct_tx_unreserve(q, fit);
            return sent ? (int)sent : rc;
        }
        sent += fit;
        if (fit < want)
            break;
    }
    return (int)sent;
}

static int tx_fill(memif_ct_queue_t *q, const tx_fill_t *f, uint32_t count)
{
    if (!q || !q->ring)
        return MEMIF_CT_ERR_NULL;
    if (!q->tx)
        return MEMIF_CT_ERR_DIRECTION;
    if (count == 0)
        return 0;
    if (q->role == MEMIF_CT_ROLE_SERVER)
        return tx_fill_server(q, f, count);
    /* as client_tx: a pool that was dropped (or never set) is not to be touched */
    return q->pool_state == MEMIF_CT_POOL_SET ? tx_fill_client(q, f, count) : MEMIF_CT_ERR_STATE;
}

int memif_ct_tx_frames(memif_ct_queue_t *q, const memif_ct_framegen_t *gen, uint64_t first_seq, uint32_t count)
{
    if (!gen)
        return MEMIF_CT_ERR_NULL;
    int rc = stamp_check(gen, first_seq, count);
    if (rc < 0)
        return rc;
    tx_fill_t f = {gen, first_seq, NULL, 0, shm_copy_movsb()};
    return tx_fill(q, &f, count);
}

int memif_ct_tx_pkts(memif_ct_queue_t *q, const memif_ct_pkt_t *pkts, uint32_t count, int macswap)
{
    if (!pkts && count)
        return MEMIF_CT_ERR_NULL;
    /* One walk: a NULL address is refused; an empty packet ends the call before it, in either
     * role (the copy API refuses one too), and is ERR_ARG if it comes first. */
    for (uint32_t i = 0; i < count; i++) {
        if (!pkts[i].addr)
            return MEMIF_CT_ERR_NULL;
        if (pkts[i].length == 0) {
            if (i == 0)
                return MEMIF_CT_ERR_ARG;
            count = i;
        }
    }
    /* memcpy: these packets are, as a rule, what the peer just wrote (rx_peek), and rep movsb
     * reads lines in another core's cache far slower: echo of 1,500-byte frames ran at 0.6x. */
    tx_fill_t f = {NULL, 0, pkts, macswap, 0};
    return tx_fill(q, &f, count);
}
