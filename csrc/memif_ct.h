/*
 * memif_ct.h - the memif-ct data path: shared-memory ring layout and copy-mode burst TX/RX.
 *
 * Wire facts come from memif-protocol.md (memif v2.0). This library knows nothing of sockets:
 * the control plane (Python, or your C program) creates or maps the regions, then hands ring
 * and region addresses to a memif_ct_queue_t and moves whole bursts through it.
 *
 * Thread model: one thread per queue at a time. Nothing here allocates, locks or calls back.
 * The only system calls on the burst path are the eventfd signal a TX call (memif_ct_tx_burst(),
 * _tx_buffers(), _tx_commit(), _tx_frames(), _tx_pkts()) sends after publishing packets, and only
 * when the peer asked for interrupts (MASK_INT clear on the ring) and the queue has an eventfd
 * (memif_ct_queue_set_eventfd()); it goes through memif_ct_eventfd_signal(), a zero-timeout poll
 * then one write bounded by a per-thread timer (see "Interrupts" below: it uses one real-time
 * signal, which memif_ct_eventfd_guard() sets up with timer_create and sigaction).
 * memif_ct_eventfd_clear() and memif_ct_fd_fs_magic() are the only other functions that make
 * system calls.
 *
 * The header compiles as C11, and as C++11 or later with g++ or clang++ (the ring's descriptor
 * array uses their flexible-array extension): the ring's atomic indexes are _Atomic uint16_t in
 * C and std::atomic<uint16_t> in C++, and every offset below is pinned by a compile-time assert
 * in both languages.
 */
#ifndef MEMIF_CT_H
#define MEMIF_CT_H

#ifdef __cplusplus
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>
/* The shared ring must have one layout in both languages: std::atomic<uint16_t> has to be the
 * plain, lock-free 16-bit word C's _Atomic uint16_t is. */
typedef std::atomic<uint16_t> memif_ct_atomic_u16_t;
static_assert(std::is_standard_layout<memif_ct_atomic_u16_t>::value, "std::atomic<uint16_t> is standard-layout");
#define MEMIF_CT_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define MEMIF_CT_ALIGNOF(type) alignof(type)
#define MEMIF_CT_FLEXIBLE_ARRAY __extension__ /* ISO C++ has no flexible array member; g++ and clang++ do */
#else
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
typedef _Atomic uint16_t memif_ct_atomic_u16_t;
#define MEMIF_CT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define MEMIF_CT_ALIGNOF(type) _Alignof(type)
#define MEMIF_CT_FLEXIBLE_ARRAY
#endif
MEMIF_CT_STATIC_ASSERT(sizeof(memif_ct_atomic_u16_t) == 2, "atomic u16 is a plain 16-bit word");
MEMIF_CT_STATIC_ASSERT(MEMIF_CT_ALIGNOF(memif_ct_atomic_u16_t) == 2, "atomic u16 is 2-byte aligned");
MEMIF_CT_STATIC_ASSERT(ATOMIC_SHORT_LOCK_FREE == 2, "atomic u16 is always lock-free: the peer uses plain loads");

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#error "memif-ct needs Linux (memfd, eventfd, SOCK_SEQPACKET)"
#endif

#ifdef MEMIF_CT_BUILDING
#define MEMIF_CT_API __attribute__((visibility("default")))
#else
#define MEMIF_CT_API
#endif

/* Bumped whenever a struct layout or a function signature below changes. */
#define MEMIF_CT_ABI_VERSION 5
#define MEMIF_CT_VERSION_STRING "0.1.0"

/* Cache-line size is part of the ring ABI (memif-protocol.md section 5): 64 on x86-64,
 * 128 where VPP and libmemif use it (aarch64). Override with -DMEMIF_CT_CACHELINE_SIZE=N. */
#ifndef MEMIF_CT_CACHELINE_SIZE
#if defined(__aarch64__)
#define MEMIF_CT_CACHELINE_SIZE 128
#else
#define MEMIF_CT_CACHELINE_SIZE 64
#endif
#endif

/* ---- protocol constants (memif-protocol.md section 2); Python twin: memif_ct/constants.py ---- */
#define MEMIF_CT_COOKIE 0x3E31F20u
#define MEMIF_CT_VERSION 0x0200u
#define MEMIF_CT_MSG_SIZE 128
#define MEMIF_CT_MSG_TYPE_NONE 0
#define MEMIF_CT_MSG_TYPE_ACK 1
#define MEMIF_CT_MSG_TYPE_HELLO 2
#define MEMIF_CT_MSG_TYPE_INIT 3
#define MEMIF_CT_MSG_TYPE_ADD_REGION 4
#define MEMIF_CT_MSG_TYPE_ADD_RING 5
#define MEMIF_CT_MSG_TYPE_CONNECT 6
#define MEMIF_CT_MSG_TYPE_CONNECTED 7
#define MEMIF_CT_MSG_TYPE_DISCONNECT 8
#define MEMIF_CT_RING_TYPE_S2M 0
#define MEMIF_CT_RING_TYPE_M2S 1
#define MEMIF_CT_MODE_ETHERNET 0
#define MEMIF_CT_MODE_IP 1
#define MEMIF_CT_MODE_PUNT_INJECT 2
#define MEMIF_CT_ADD_RING_FLAG_S2M 1
#define MEMIF_CT_DESC_FLAG_NEXT 1
#define MEMIF_CT_RING_FLAG_MASK_INT 1
#define MEMIF_CT_SECRET_SIZE 24
#define MEMIF_CT_NAME_SIZE 32
#define MEMIF_CT_DISCONNECT_STRING_SIZE 96
#define MEMIF_CT_DESC_SIZE 16
#define MEMIF_CT_MIN_LOG2_RING_SIZE 1
#define MEMIF_CT_MAX_LOG2_RING_SIZE 14
#define MEMIF_CT_MAX_REGIONS 255
#define MEMIF_CT_MAX_RINGS_PER_DIRECTION 255
#define MEMIF_CT_MIN_BUFFER_SIZE 64
#define MEMIF_CT_MAX_BUFFER_SIZE 0xFFFF
/* Largest single region a server maps (1 TiB): a hostile ADD_REGION size never reaches mmap. */
#define MEMIF_CT_MAX_REGION_SIZE (1ull << 40)

/* Roles of the side that drives a queue. */
#define MEMIF_CT_ROLE_CLIENT 0
#define MEMIF_CT_ROLE_SERVER 1

/* ---- error codes; memif_ct_strerror() names each ---- */
typedef enum {
    MEMIF_CT_OK = 0,
    MEMIF_CT_ERR_ARG = -1,         /* an argument is out of range */
    MEMIF_CT_ERR_NULL = -2,        /* a required pointer is NULL */
    MEMIF_CT_ERR_LAYOUT = -3,      /* a ring or buffer lies outside its region */
    MEMIF_CT_ERR_COOKIE = -4,      /* ring header does not carry MEMIF_CT_COOKIE */
    MEMIF_CT_ERR_DIRECTION = -5,   /* the call does not fit this queue's role and ring type */
    MEMIF_CT_ERR_OVERFLOW = -6,    /* a size computation overflowed */
    MEMIF_CT_ERR_ALIGN = -7,       /* a ring is not aligned for its 16-bit atomic indexes */
    MEMIF_CT_ERR_TOO_BIG = -8,     /* a packet is larger than the ring (TX) or the buffer (RX) holds */
    MEMIF_CT_ERR_RANGE = -9,       /* an address or buffer lies outside every segment, or the pool */
    MEMIF_CT_ERR_STATE = -10       /* the call does not fit the object's state (double free, no pool yet, ...) */
} memif_ct_error_t;

/* ---- shared-memory structures (memif-protocol.md section 5) ---- */

/* One 16-byte descriptor. Written by the producer of its ring, read by the consumer. */
typedef struct {
    uint16_t flags;    /* MEMIF_CT_DESC_FLAG_NEXT: the packet continues in the next slot */
    uint16_t region;   /* index of the region the buffer lives in */
    uint32_t length;   /* bytes of data (or, posted by the M2S client, buffer capacity) */
    uint32_t offset;   /* buffer offset from the start of the region */
    uint32_t metadata; /* unused by every known peer */
} memif_ct_desc_t;

/* Ring header followed by (1 << log2_ring_size) descriptors. head and tail each sit alone on
 * their cache line; each is written by one side only and read with acquire semantics. */
typedef struct {
    uint32_t cookie;               /* MEMIF_CT_COOKIE, written by the client at init */
    memif_ct_atomic_u16_t flags;   /* MEMIF_CT_RING_FLAG_MASK_INT, owned by the receiver */
    memif_ct_atomic_u16_t head;    /* written only by the client */
    uint8_t pad0[MEMIF_CT_CACHELINE_SIZE - 8];
    memif_ct_atomic_u16_t tail;    /* written only by the server */
    uint8_t pad1[MEMIF_CT_CACHELINE_SIZE - 2];
    MEMIF_CT_FLEXIBLE_ARRAY memif_ct_desc_t desc[];
} memif_ct_ring_t;

MEMIF_CT_STATIC_ASSERT(sizeof(memif_ct_desc_t) == MEMIF_CT_DESC_SIZE, "descriptor is 16 bytes");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_desc_t, flags) == 0, "desc.flags at 0");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_desc_t, region) == 2, "desc.region at 2");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_desc_t, length) == 4, "desc.length at 4");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_desc_t, offset) == 8, "desc.offset at 8");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_desc_t, metadata) == 12, "desc.metadata at 12");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_ring_t, cookie) == 0, "ring.cookie at 0");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_ring_t, flags) == 4, "ring.flags at 4");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_ring_t, head) == 6, "ring.head at 6");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_ring_t, tail) == MEMIF_CT_CACHELINE_SIZE, "ring.tail at CL");
MEMIF_CT_STATIC_ASSERT(offsetof(memif_ct_ring_t, desc) == 2 * MEMIF_CT_CACHELINE_SIZE, "desc at 2*CL");
MEMIF_CT_STATIC_ASSERT(sizeof(memif_ct_ring_t) == 2 * MEMIF_CT_CACHELINE_SIZE, "ring header is 2*CL");
MEMIF_CT_STATIC_ASSERT(MEMIF_CT_CACHELINE_SIZE >= 64 && (MEMIF_CT_CACHELINE_SIZE & (MEMIF_CT_CACHELINE_SIZE - 1)) == 0,
                       "cache-line size is a power of two >= 64");

/* ---- process-local structures ---- */

/* A mapped region as this process sees it. */
typedef struct {
    uint8_t *base; /* NULL for a region not (yet) mapped: any descriptor naming it is bad */
    uint64_t size; /* bytes mapped */
} memif_ct_region_t;

/* Layout of one non-zero-copy region holding every ring, then every buffer (the VPP/DPDK
 * layout, memif-protocol.md section 5). All offsets are from the region start. */
typedef struct {
    uint32_t num_s2m;        /* S2M (client to server) rings */
    uint32_t num_m2s;        /* M2S (server to client) rings */
    uint32_t log2_ring_size; /* descriptors per ring = 1 << log2_ring_size */
    uint32_t buffer_size;    /* bytes per buffer slot */
    uint64_t ring_bytes;     /* bytes of one ring: 2*CL + 16 * ring size */
    uint64_t buffers_offset; /* offset of buffer slot 0 (= all rings' bytes) */
    uint64_t total_size;     /* bytes of the whole region */
} memif_ct_layout_t;

/* Per-queue counters. Only the thread driving the queue writes them. */
typedef struct {
    uint64_t packets;   /* packets moved */
    uint64_t bytes;     /* payload bytes moved */
    uint64_t chains;    /* packets that spanned more than one buffer */
    uint64_t bad_desc;  /* descriptors rejected by validation (skipped, never dereferenced) */
    uint64_t bad_ring;  /* times the peer's head/tail index was impossible */
    uint64_t drops;     /* packets dropped: too large for the caller's buffer or a bad chain */
    uint64_t no_space;  /* burst calls that stopped early because the ring was full or empty of buffers */
    uint64_t bad_chain; /* chains no correct sender publishes: as long as the ring, or published in parts */
    uint64_t skipped;   /* slots given up unread when the peer's index jumped beyond the ring (bad_ring) */
} memif_ct_stats_t;

/* One memory segment a zero-copy (or pool-using) client exposes: a run of bytes that descriptors
 * address as `region` at offset + (addr - base). */
typedef struct {
    uint8_t *base;   /* first byte of the segment in this process */
    uint64_t size;   /* bytes; descriptors address it with u32 offsets, so offset + size <= 2^32 */
    uint64_t offset; /* where base lies in its region (0 for a zero-copy segment, one region each) */
    uint16_t region; /* memif region index this segment is announced as */
    uint16_t pad[3];
} memif_ct_segment_t;

/* A buffer pool over segments: opaque, laid out in caller memory by memif_ct_pool_init(). */
typedef struct memif_ct_pool memif_ct_pool_t;

/* States of a pool buffer. */
#define MEMIF_CT_BUF_FREE 0 /* in the pool */
#define MEMIF_CT_BUF_APP 1  /* handed to the application by memif_ct_pool_alloc() */
#define MEMIF_CT_BUF_RING 2 /* held by a queue's slot */

/* Where one buffer is (memif_ct_pool_buffer(), memif_ct_tx_reserve()). */
typedef struct {
    uint8_t *addr;
    uint64_t offset;   /* from its region's start (fits u32) */
    uint32_t capacity; /* bytes it holds */
    uint16_t region;
    uint16_t state;    /* MEMIF_CT_BUF_* */
} memif_ct_buf_t;

/* One packet seen by memif_ct_rx_peek(). */
typedef struct {
    const uint8_t *addr; /* in shared memory, or in the caller's scratch for a scattered chain */
    uint32_t length;
    uint16_t slots;      /* descriptors it used */
    uint16_t scratch;    /* 1 if assembled into scratch */
} memif_ct_pkt_t;

/* memif_ct_queue_init()/memif_ct_ring_init() buffer_region of a client whose buffers come from a
 * pool (memif_ct_queue_set_pool()): no slot-math buffers at all. */
#define MEMIF_CT_NO_REGION 0xFFFFu

/* One end of one ring, as driven by one side. Caller-allocated (memif_ct_queue_sizeof()
 * tells FFI users its size); initialise with memif_ct_queue_init(). */
typedef struct {
    memif_ct_ring_t *ring;
    const memif_ct_region_t *regions; /* caller-owned table; must outlive the queue */
    uint16_t num_regions;
    uint16_t ring_size;       /* 1 << log2_ring_size */
    uint16_t mask;            /* ring_size - 1 */
    uint8_t log2_ring_size;
    uint8_t role;             /* MEMIF_CT_ROLE_* of the side driving this queue */
    uint8_t type;             /* MEMIF_CT_RING_TYPE_* of the ring */
    uint8_t tx;               /* 1 if this side produces on the ring, 0 if it consumes */
    uint16_t last_head;       /* client: our head; server: last head seen */
    uint16_t last_tail;       /* server: our tail; client: last tail consumed */
    uint16_t buffer_region;   /* client: region of this ring's buffers */
    uint32_t buffer_size;     /* client: bytes per buffer slot */
    int32_t eventfd;          /* TX: signalled after a burst when the peer asks; -1 for none */
    uint64_t buffer_offset;   /* client: offset of this ring's slot 0 buffer */
    uint16_t partial_start;   /* RX: a chain starting here was seen with NEXT on the last */
    uint8_t partial_valid;    /*     published slot: counted in bad_chain when it is consumed */
    uint8_t pool_state;       /* client: MEMIF_CT_POOL_* (internal): slot math, pool wanted, set, dropped */
    memif_ct_stats_t stats;
    memif_ct_pool_t *pool;    /* client with a pool: where its buffers come from */
    uint32_t *slot_buf;       /*     caller's table: pool buffer index of each slot */
    uint16_t reclaimed;       /* client S2M with a pool: slots before this index gave their buffer back */
    uint16_t peeked;          /* RX: slots peeked (memif_ct_rx_peek) and not released */
    uint16_t reserved;        /* server M2S: buffers reserved (memif_ct_tx_reserve), not committed */
    uint16_t reserved_slots;  /*     slots those reservations span, bad posted ones included */
} memif_ct_queue_t;

/* ---- library identity ---- */

/* ABI version of the loaded library (MEMIF_CT_ABI_VERSION it was built with). */
MEMIF_CT_API uint32_t memif_ct_abi_version(void);
/* Library version string, e.g. "0.1.0". */
MEMIF_CT_API const char *memif_ct_version(void);
/* Cache-line size the ring layout was built for (64 or 128). */
MEMIF_CT_API uint32_t memif_ct_cacheline_size(void);
/* Compiler and flags the library was built with, for bug reports. */
MEMIF_CT_API const char *memif_ct_build_info(void);
/* Human-readable text of a memif_ct_error_t; never NULL. */
MEMIF_CT_API const char *memif_ct_strerror(int err);
/* Table of every protocol constant above as (name, value) pairs; *count receives its length.
 * Lets bindings prove their own constants agree with this header. */
typedef struct {
    const char *name;
    uint64_t value;
} memif_ct_constant_t;
MEMIF_CT_API const memif_ct_constant_t *memif_ct_constants(size_t *count);
/* sizeof(memif_ct_queue_t), for FFI users that allocate queues themselves. */
MEMIF_CT_API size_t memif_ct_queue_sizeof(void);

/* How TX paths copy the caller's packets into shared memory, for every queue of the process
 * (memif_ct_tx_pkts, whose packets the peer wrote as a rule, always uses memcpy). */
#define MEMIF_CT_COPY_QUERY (-1) /* change nothing: only say which is in use */
#define MEMIF_CT_COPY_MEMCPY 0   /* memcpy for every copy */
#define MEMIF_CT_COPY_MOVSB 1    /* `rep movsb` for copies of 512 bytes or more (x86-64 with ERMS) */
/* Set the copy method (default: MOVSB where the CPU has ERMS, else MEMCPY) and return the one in
 * use; MEMIF_CT_ERR_ARG for MOVSB where unavailable (no ERMS, not x86-64, ASan) or another value. */
MEMIF_CT_API int memif_ct_copy_method(int method);

/* ---- layout math ---- */

/* Bytes of one ring (header + descriptors) of 1 << log2_ring_size slots; 0 if out of range. */
MEMIF_CT_API uint64_t memif_ct_ring_bytes(uint32_t log2_ring_size);
/* Fill *layout for a single region holding all rings then all buffers. Returns MEMIF_CT_OK,
 * MEMIF_CT_ERR_NULL or _ARG (counts 1..255, log2 1..14, buffer size 64..65535). Buffers past
 * 4 GiB cannot be a descriptor's (u32) offset: memif_ct_ring_init() refuses those (_OVERFLOW). */
MEMIF_CT_API int memif_ct_layout_init(memif_ct_layout_t *layout, uint32_t num_s2m, uint32_t num_m2s,
                                      uint32_t log2_ring_size, uint32_t buffer_size);
/* Offset of ring `index` of `type` within the region laid out by *layout; UINT64_MAX if out of
 * range, or if *layout is not one memif_ct_layout_init() could have made. */
MEMIF_CT_API uint64_t memif_ct_layout_ring_offset(const memif_ct_layout_t *layout, uint32_t type, uint32_t index);
/* Offset of the first buffer owned by ring `index` of `type`; UINT64_MAX as above. */
MEMIF_CT_API uint64_t memif_ct_layout_buffer_offset(const memif_ct_layout_t *layout, uint32_t type,
                                                    uint32_t index);

/* ---- ring setup ---- */

/* Client: write a fresh ring header (cookie, flags 0, head = tail = 0) and point descriptor s at
 * buffer_offset + s * buffer_size in buffer_region, length buffer_size. The ring must have
 * memif_ct_ring_bytes(log2_ring_size) writable bytes, aligned as memif_ct_ring_t. buffer_region
 * MEMIF_CT_NO_REGION (buffers from a pool): every descriptor zeroed instead (buffer_offset ignored).
 * MEMIF_CT_ERR_NULL, _ARG, _ALIGN, _OVERFLOW (a buffer past 4 GiB) leave the ring untouched. */
MEMIF_CT_API int memif_ct_ring_init(void *ring, uint32_t log2_ring_size, uint16_t buffer_region,
                                    uint64_t buffer_offset, uint32_t buffer_size);
/* Bind *q to a ring. role/type say who drives which ring; regions[0..num_regions) is the
 * caller's table of mapped regions used to validate every descriptor. buffer_* describe the
 * client's own buffers and are ignored for a server. Checks the ring cookie and that the ring
 * and (client) buffers lie inside their regions. The queue starts with no eventfd (-1).
 * A client may pass buffer_region MEMIF_CT_NO_REGION (buffer_offset ignored, buffer_size still
 * the bytes per buffer): every burst/refill/peek then returns MEMIF_CT_ERR_STATE until
 * memif_ct_queue_set_pool() gives it a pool. */
MEMIF_CT_API int memif_ct_queue_init(memif_ct_queue_t *q, void *ring, uint32_t log2_ring_size, uint32_t role,
                                     uint32_t type, const memif_ct_region_t *regions, uint16_t num_regions,
                                     uint16_t buffer_region, uint64_t buffer_offset, uint32_t buffer_size);
/* Set the eventfd the TX calls signal (fd >= 0; -1: none); the caller still owns the fd.
 * Returns MEMIF_CT_OK, MEMIF_CT_ERR_NULL, or MEMIF_CT_ERR_ARG for fd < -1. */
MEMIF_CT_API int memif_ct_queue_set_eventfd(memif_ct_queue_t *q, int fd);

/* ---- burst data path (copy mode) ---- */

/* Transmit up to n_pkts packets stored back to back in data (data_size bytes), packet i having
 * lengths[i] bytes; lengths of 0, or summing past data_size, are MEMIF_CT_ERR_ARG.
 * Client on S2M: fills its own buffers, chaining packets longer than one buffer. Server on M2S:
 * fills buffers the client posted, after validating each descriptor. A packet that does not fit
 * in the free slots is not started: no partial chain is ever published. When at least one packet
 * was queued, the peer wants interrupts (MASK_INT clear, read with acquire) and the queue has an
 * eventfd, writes it once per burst with memif_ct_eventfd_signal(); a failed write is not
 * reported, as the packets are queued regardless. Returns the number of packets queued
 * (0..n_pkts), or a negative memif_ct_error_t for a wrong call.
 * MEMIF_CT_ERR_TOO_BIG: a packet the ring can never carry, so that a caller retrying until
 * everything is sent cannot spin forever. Client: checked with the arguments, before anything
 * is queued: a packet needing more than ring_size buffers of buffer_size bytes (the first such
 * packet is the caller's to find). Server: the whole ring is posted (head - tail == ring_size)
 * and every posted buffer together still holds less than the burst's first packet; when earlier
 * packets of the burst were queued, their count is returned and the next call reports it.
 * A client with a pool takes one pool buffer per segment (none free: no_space, as a full ring);
 * MEMIF_CT_ERR_STATE: a server with buffers reserved (tx_reserve), a queue waiting for its pool. */
MEMIF_CT_API int memif_ct_tx_burst(memif_ct_queue_t *q, const uint8_t *data, size_t data_size,
                                   const uint32_t *lengths, uint32_t n_pkts);
/* memif_ct_tx_burst(), but the lengths must add up to exactly data_size (else MEMIF_CT_ERR_ARG,
 * nothing queued, also for n_pkts 0 with data_size > 0): a caller that joined the packets it
 * measured needs no sum of its own. Only the sum is checked, not each packet's own size. */
MEMIF_CT_API int memif_ct_tx_burst_exact(memif_ct_queue_t *q, const uint8_t *data, size_t data_size,
                                         const uint32_t *lengths, uint32_t n_pkts);
/* Receive up to max_pkts packets into out (capacity out_size bytes) back to back, storing each
 * length in lengths[]. Chains are reassembled; bad descriptors are counted and skipped; a
 * packet larger than out_size is dropped and counted; a chain still missing its last slot is
 * left for the next call. A client re-posts the consumed buffers before returning. Never touches
 * the eventfd. Returns the number of packets received, or a negative memif_ct_error_t.
 * Dropping what does not fit is what keeps a hostile peer from wedging the ring: a caller that
 * wants to hear of it instead uses memif_ct_rx_burst_ex() with MEMIF_CT_RX_KEEP_TOO_BIG.
 * MEMIF_CT_ERR_STATE while slots are peeked (memif_ct_rx_peek) and not released. */
MEMIF_CT_API int memif_ct_rx_burst(memif_ct_queue_t *q, uint8_t *out, size_t out_size, uint32_t *lengths,
                                   uint32_t max_pkts);

/* memif_ct_rx_burst_ex() flag: a packet larger than out_size, found when nothing has been
 * received yet in this call, is left in the ring (not dropped, not counted) and the call returns
 * MEMIF_CT_ERR_TOO_BIG with the packet's length in lengths[0], so that a larger buffer can take
 * it. A packet longer than UINT32_MAX bytes, which no lengths[] entry can describe, is still
 * dropped and counted, as are bad chains. */
#define MEMIF_CT_RX_KEEP_TOO_BIG 1u
/* memif_ct_rx_burst() with flags (MEMIF_CT_RX_*; any other bit is MEMIF_CT_ERR_ARG). With no
 * flags it is memif_ct_rx_burst(). */
MEMIF_CT_API int memif_ct_rx_burst_ex(memif_ct_queue_t *q, uint8_t *out, size_t out_size, uint32_t *lengths,
                                      uint32_t max_pkts, uint32_t flags);
/* Client on M2S: post every free buffer to the server (advances head). Returns slots posted. */
MEMIF_CT_API int memif_ct_refill(memif_ct_queue_t *q);

/* Slots published and not yet consumed: on S2M, head - tail; for an M2S client, what an
 * rx_burst could read now. 0 for a server's M2S queue, whose consumption it cannot see. */
MEMIF_CT_API uint32_t memif_ct_queue_pending(const memif_ct_queue_t *q);
/* Free slots a producer could fill now (0 for a consumer queue). */
MEMIF_CT_API uint32_t memif_ct_queue_free(const memif_ct_queue_t *q);

/* ---- interrupts (memif-protocol.md section 5, "Interrupts") ---- */

/* Receiver: set (1) or clear (0) MASK_INT on the ring it reads; set means "I poll, don't signal".
 * A full fence follows, so a check of the ring after it cannot miss a signal. */
MEMIF_CT_API void memif_ct_queue_set_polling(memif_ct_queue_t *q, int polling);
/* Transmitter: 1 if the peer wants an eventfd signal after a burst (MASK_INT clear), else 0;
 * call it after publishing (a full fence comes first). memif_ct_tx_burst() acts on it already. */
MEMIF_CT_API int memif_ct_queue_needs_signal(const memif_ct_queue_t *q);
/* The eventfd is one open file shared with the peer, which can clear O_NONBLOCK on it and saturate
 * its counter at any moment, so no flag check or poll can promise that the next write (or read)
 * returns. Each thread therefore bounds that one system call with a POSIX timer of its own
 * (CLOCK_MONOTONIC, SIGEV_THREAD_ID to the calling thread), armed only around the call, that sends
 * the real-time signal SIGRTMAX - 3 every MEMIF_CT_EVENTFD_TIMEOUT_NS; the library installs a
 * no-op handler for it, without SA_RESTART, the first time any thread needs it, so a blocked write or
 * read returns EINTR after at most that long (a blocked eventfd write means the counter is
 * saturated: the peer is signalled already). Build with -DMEMIF_CT_GUARD_SIGNAL=N to use signal N
 * instead. The application must leave that signal alone: if it already has a handler or is ignored
 * when first needed, it is not taken, and the calls fall back to a poll then an unbounded write or
 * read (the race above is open again). A thread that blocks the signal when it first signals an
 * eventfd gets it unblocked around each such call (two more system calls); blocking it later in a
 * thread unbounds that thread's calls. The timer is created once per thread (the first time it
 * needs one) and deleted when the thread exits; a forked child starts over. Neither function below
 * is async-signal-safe. Do not unload the library (dlclose) while a thread that used it lives: its
 * exit runs the library's code that deletes its timer. */
#define MEMIF_CT_EVENTFD_TIMEOUT_NS 5000000
/* Whether the calling thread's eventfd calls are bounded: the signal number (> 0) if so, else
 * -EBUSY (the application owns the signal), or -errno from creating the thread's timer. Sets the
 * thread up if it was not yet, as its first eventfd call would. */
MEMIF_CT_API int memif_ct_eventfd_guard(void);
/* Signal an eventfd (write 1). Never blocks for longer than MEMIF_CT_EVENTFD_TIMEOUT_NS, whatever
 * the peer does to the shared file (see above): a saturated counter is left as is. Returns 0 or
 * -errno (-EBADF for a file not open for writing). */
MEMIF_CT_API int memif_ct_eventfd_signal(int fd);
/* Read (and so clear) an eventfd without blocking (preadv2 RWF_NOWAIT; on a kernel without it,
 * a read bounded as above); returns the counter read, 0 if none was pending, or -errno. */
MEMIF_CT_API int64_t memif_ct_eventfd_clear(int fd);

/* ---- file descriptors a peer sent ---- */

/* The f_type of the file system fd's file lives on (fstatfs), e.g. 0x958458f6 for hugetlbfs
 * (linux/magic.h), or -errno. Decides by the open file itself, which a peer cannot fake the way
 * it can fake a path. */
MEMIF_CT_API int64_t memif_ct_fd_fs_magic(int fd);

/* ---- segments and memseg math (memif-protocol.md section 5, "Zero-copy") ---- */

/* Address -> descriptor fields: the first of segs[0..n) holding all of [addr, addr + length)
 * (length 0 counts as outside), its region and offset. MEMIF_CT_OK, ERR_RANGE, ERR_NULL. */
MEMIF_CT_API int memif_ct_memseg_to_desc(const memif_ct_segment_t *segs, uint32_t n, const void *addr,
                                         uint64_t length, uint16_t *region, uint32_t *offset);
/* Descriptor fields -> address: NULL unless [offset, offset + length) lies inside a segment
 * announced as `region` (length 0 never does). */
MEMIF_CT_API void *memif_ct_memseg_to_addr(const memif_ct_segment_t *segs, uint32_t n, uint16_t region,
                                           uint64_t offset, uint64_t length);

/* ---- buffer pool: fixed-size buffers carved from segments, in caller memory ---- */

/* Bytes a pool over these segments needs; 0 on bad arguments (n 1..255, buffer_size 64..65535,
 * segments non-NULL, offset + size <= 2^32, no two overlapping in memory or in one region) or
 * when no whole buffer fits. */
MEMIF_CT_API uint64_t memif_ct_pool_bytes(const memif_ct_segment_t *segs, uint32_t n, uint32_t buffer_size);
/* Lay out a pool in mem (mem_size >= memif_ct_pool_bytes(), 8-byte aligned, never moved while in
 * use), every buffer FREE. Buffer k of a segment is at base + k * buffer_size. MEMIF_CT_ERR_NULL,
 * _ARG (bad segments, or segs inside mem), _LAYOUT (mem too small or inside a segment), _ALIGN. */
MEMIF_CT_API int memif_ct_pool_init(memif_ct_pool_t *pool, size_t mem_size, const memif_ct_segment_t *segs,
                                    uint32_t n, uint32_t buffer_size);
/* Buffers in the pool in total (0 for NULL). */
MEMIF_CT_API uint32_t memif_ct_pool_count(const memif_ct_pool_t *pool);
/* Bytes per buffer (0 for NULL). */
MEMIF_CT_API uint32_t memif_ct_pool_buffer_size(const memif_ct_pool_t *pool);
/* Buffers in each state, FREE, APP and RING (any pointer may be NULL); they sum to the count. */
MEMIF_CT_API void memif_ct_pool_counts(const memif_ct_pool_t *pool, uint32_t *free, uint32_t *app, uint32_t *ring);
/* Take up to n FREE buffers for the application (-> APP), last freed first; their indexes into
 * idx[]. Returns how many. */
MEMIF_CT_API uint32_t memif_ct_pool_alloc(memif_ct_pool_t *pool, uint32_t *idx, uint32_t n);
/* Give APP buffers back (-> FREE). An index out of range or not APP (a double free) is skipped and
 * the call returns MEMIF_CT_ERR_STATE, the valid ones freed all the same; else MEMIF_CT_OK. */
MEMIF_CT_API int memif_ct_pool_free(memif_ct_pool_t *pool, const uint32_t *idx, uint32_t n);
/* Copy n packets packed back to back in data (lengths[i] bytes each) into APP buffers idx[i].
 * Nothing is written unless every index is APP (else ERR_STATE) and every length is 1..max_length
 * (0: the buffer size; never more) and all fit data_size (else ERR_ARG). Returns n. */
MEMIF_CT_API int memif_ct_pool_write(memif_ct_pool_t *pool, const uint32_t *idx, uint32_t n, const uint8_t *data,
                                     size_t data_size, const uint32_t *lengths, uint32_t max_length);
/* Where buffer idx is, and its state: MEMIF_CT_OK, ERR_RANGE (no such index), ERR_NULL. */
MEMIF_CT_API int memif_ct_pool_buffer(const memif_ct_pool_t *pool, uint32_t idx, memif_ct_buf_t *out);
/* The index of the buffer starting exactly at addr: MEMIF_CT_OK, ERR_RANGE if none does, ERR_NULL. */
MEMIF_CT_API int memif_ct_pool_index_of(const memif_ct_pool_t *pool, const void *addr, uint32_t *idx);

/* ---- client queues whose buffers come from a pool ---- */

/* Client queue, nothing posted or in flight yet: take buffers from pool (segments inside the
 * queue's mapped regions, else ERR_LAYOUT; buffer_size >= the queue's, else ERR_ARG). slot_table:
 * caller memory of ring_size u32, kept while the queue lives. M2S: one buffer per slot now, for
 * the queue's life (ERR_RANGE if the pool is short), each descriptor rewritten to it; refill posts
 * them. S2M: a buffer per packet segment at TX, back to the pool once the server's tail passed
 * its slot. ERR_DIRECTION for a server queue, ERR_STATE if a pool was set or traffic happened. */
MEMIF_CT_API int memif_ct_queue_set_pool(memif_ct_queue_t *q, memif_ct_pool_t *pool, uint32_t *slot_table);
/* Client S2M with a pool: give back (RING -> FREE) the buffers of slots the server released.
 * Every TX call does it first. Returns the count, ERR_STATE without a pool, ERR_DIRECTION. */
MEMIF_CT_API int memif_ct_queue_reclaim(memif_ct_queue_t *q);
/* Client S2M with a pool: reclaim as memif_ct_queue_reclaim(), then take up to n (at most
 * INT32_MAX) FREE buffers for the application (-> APP) into idx[], in one call. Returns how many,
 * reclaim's errors, or MEMIF_CT_ERR_NULL for idx NULL with n > 0 (after the reclaim). */
MEMIF_CT_API int memif_ct_tx_alloc(memif_ct_queue_t *q, uint32_t *idx, uint32_t n);
/* Teardown, once the peer is gone: every buffer the queue's slots hold goes back to the pool
 * (RING -> FREE). Returns the count; every later burst on the queue is MEMIF_CT_ERR_STATE. */
MEMIF_CT_API int memif_ct_queue_drop_pool(memif_ct_queue_t *q);

/* ---- zero-copy TX ---- */

/* Client S2M with a pool: publish APP buffers idx[0..n), lengths[i] bytes each (1..buffer size;
 * else ERR_ARG), one packet each, in order, as far as free slots go (-> RING); an index not APP or
 * repeated is ERR_STATE, with nothing published. Reclaims first; signals like tx_burst. Returns
 * the count published; the rest stay APP. */
MEMIF_CT_API int memif_ct_tx_buffers(memif_ct_queue_t *q, const uint32_t *idx, const uint32_t *lengths, uint32_t n);
/* Server M2S: reserve up to n buffers the client posted, after those reserved already; out[i] gets
 * addr, capacity (the posted length), region, offset. A bad posted descriptor is skipped (handed
 * back empty at commit). Returns the count reserved. */
MEMIF_CT_API int memif_ct_tx_reserve(memif_ct_queue_t *q, memif_ct_buf_t *out, uint32_t n);
/* Server M2S: publish the first n reserved buffers, in order, with lengths[i] bytes (1..capacity,
 * else ERR_ARG with nothing published), and the bad slots between them; signals like tx_burst.
 * Returns n. Reservations not committed stay reserved. */
MEMIF_CT_API int memif_ct_tx_commit(memif_ct_queue_t *q, const uint32_t *lengths, uint32_t n);
/* Server M2S: buffers reserved and not committed. */
MEMIF_CT_API uint32_t memif_ct_tx_reserved(const memif_ct_queue_t *q);
/* Server on M2S: give back the last n reserved buffers (the most recent ones: the posted buffers
 * are taken in ring order), so that a later reserve offers them again. MEMIF_CT_OK, or
 * MEMIF_CT_ERR_ARG if fewer than n are reserved. */
MEMIF_CT_API int memif_ct_tx_unreserve(memif_ct_queue_t *q, uint32_t n);

/* ---- RX without copying (both roles, with or without a pool) ---- */

/* Look at up to max_pkts whole valid packets after what earlier peeks took, without releasing
 * them. One slot, or a chain contiguous in memory, is pointed at where it lies; a scattered chain
 * is copied into scratch (bump-allocated; a chain that does not fit what is left ends the call,
 * one that could never fit is dropped and counted, like rx_burst). Bad descriptors and chains
 * are counted and stepped over exactly as rx_burst does. Returns the count. */
MEMIF_CT_API int memif_ct_rx_peek(memif_ct_queue_t *q, memif_ct_pkt_t *pkts, uint32_t max_pkts, uint8_t *scratch,
                                  size_t scratch_size);
/* Release every slot peeked so far, as rx_burst releases what it consumed (server: tail; client:
 * refill). The peeked pointers are invalid afterwards. Returns the slots released. */
MEMIF_CT_API int memif_ct_rx_release(memif_ct_queue_t *q);
/* Slots peeked and not released (rx_burst/_ex return MEMIF_CT_ERR_STATE while it is not 0). */
MEMIF_CT_API uint32_t memif_ct_rx_peeked(const memif_ct_queue_t *q);
/* Total length of the first count packets of an rx_peek output (0 for NULL). */
MEMIF_CT_API uint64_t memif_ct_pkts_bytes(const memif_ct_pkt_t *pkts, uint32_t count);

/* ---- statistics ---- */

/* Copy the queue's counters to *out. */
MEMIF_CT_API void memif_ct_queue_stats(const memif_ct_queue_t *q, memif_ct_stats_t *out);
/* Zero the queue's counters. */
MEMIF_CT_API void memif_ct_queue_stats_reset(memif_ct_queue_t *q);

/* ---- traffic generation and checking (csrc/traffic.c): memif-ct's test frames ----
 *
 * The frame the memif-ct tools send and check, in whole bursts (Python twin and reference:
 * memif_ct/frames.py). Ethernet II / IPv4 (DF, ID 0, no options) / UDP (checksum 0), then:
 *   42 magic "MEMCT1" | 48 seq, u64 big-endian | 56 crc32 (zlib's) of seq then the payload up to
 *   the IPv4 end, big-endian | 60 payload: a window of the caller's pattern table chosen by seq.
 * MACs, IP addresses, ports and TTL are not checked (a reflector may rewrite them); everything
 * else is. Nothing here allocates: generators and checkers live in caller memory. */

#define MEMIF_CT_FRAME_MIN_SIZE 60u        /* smallest test frame: the Ethernet minimum without FCS */
#define MEMIF_CT_FRAME_MAX_SIZE 65535u
#define MEMIF_CT_FRAME_MAGIC_OFFSET 42u
#define MEMIF_CT_FRAME_SEQ_OFFSET 48u
#define MEMIF_CT_FRAME_CRC_OFFSET 56u
#define MEMIF_CT_FRAME_PATTERN_OFFSET 60u
#define MEMIF_CT_FRAME_PATTERN_PERIOD 251u /* the payload of seq starts at pattern[seq % 251] */

/* What memif_ct_frame_verify() concluded; from MEMIF_CT_FRAME_SHORT on, "ours, damaged". */
typedef enum {
    MEMIF_CT_FRAME_OK = 0,              /* one of ours, intact */
    MEMIF_CT_FRAME_NOT_OURS = 1,        /* magic more than 2 bytes off (or frame < 48 bytes) */
    MEMIF_CT_FRAME_SHORT = 2,           /* shorter than MEMIF_CT_FRAME_MIN_SIZE */
    MEMIF_CT_FRAME_BAD_MAGIC = 3,       /* magic within 2 bytes, not exact */
    MEMIF_CT_FRAME_BAD_ETHERTYPE = 4,
    MEMIF_CT_FRAME_BAD_IP_HEADER = 5,   /* version/IHL or protocol */
    MEMIF_CT_FRAME_BAD_IP_CHECKSUM = 6,
    MEMIF_CT_FRAME_BAD_IP_LENGTH = 7,   /* total length too small or past the frame */
    MEMIF_CT_FRAME_BAD_UDP_LENGTH = 8,
    MEMIF_CT_FRAME_BAD_UDP_CHECKSUM = 9,
    MEMIF_CT_FRAME_BAD_CRC = 10,
    MEMIF_CT_FRAME_VERDICTS = 11        /* how many verdicts there are */
} memif_ct_frame_verdict_t;

/* A frame generator: headers of one frame size and the pattern table, both caller memory that
 * must outlive it. Set up by memif_ct_framegen_init(). */
typedef struct {
    const uint8_t *tmpl;    /* a whole frame of `size` bytes; its first 48 bytes are copied */
    const uint8_t *pattern; /* payload windows: pattern_size >= 251 + size - 60 */
    uint32_t size;          /* bytes per frame */
    uint32_t pattern_size;
} memif_ct_framegen_t;

/* Flags of memif_ct_checker_t. */
#define MEMIF_CT_CHECK_FIXED 1u /* the window is every seq the run sent: one outside is a duplicate */

/* The verifier's bookkeeping over a run, in caller memory (memif_ct_checker_init()). A seq is
 * tracked in a bitmap window [window_base, window_base + window_bits); out-of-order is judged
 * per RX queue (a ring keeps order, queues do not between them). Counters are the caller's to read. */
typedef struct {
    uint64_t frames;       /* frames checked */
    uint64_t bytes;        /* their bytes */
    uint64_t unique;       /* distinct intact frames of ours */
    uint64_t duplicates;   /* intact frames whose seq was seen already (or, FIXED, is outside the window) */
    uint64_t corrupted;    /* ours, damaged */
    uint64_t not_ours;
    uint64_t out_of_order; /* a new seq below the highest seen on its queue */
    uint64_t lowest;       /* lowest and highest distinct seq; valid when unique > 0 */
    uint64_t highest;
    uint64_t need_seq;     /* set when a check stopped at a seq outside a non-FIXED window */
    uint8_t *bitmap;       /* (window_bits + 7) / 8 bytes: bit i (LSB first) is seq window_base + i */
    uint64_t window_base;  /* a multiple of 8 */
    uint64_t window_bits;
    uint64_t *queue_high;  /* num_queues: highest seq seen on each RX queue, UINT64_MAX for none */
    uint32_t num_queues;
    uint32_t flags;        /* MEMIF_CT_CHECK_* */
    uint32_t last_corrupt; /* verdict of the last corrupted frame (0 if none yet) */
    uint32_t pad;
} memif_ct_checker_t;

/* zlib's crc32 of len bytes at data, continuing from crc (0 to start). */
MEMIF_CT_API uint32_t memif_ct_crc32(uint32_t crc, const void *data, size_t len);
/* Name of a memif_ct_frame_verdict_t ("ok", "payload crc32 mismatch", ...); "unknown verdict" else. */
MEMIF_CT_API const char *memif_ct_frame_verdict_str(int verdict);
/* Check tmpl (tmpl_size bytes, 60..65535: a whole frame whose headers describe that size) and the
 * pattern table, and set up gen. MEMIF_CT_ERR_NULL, _ARG (headers that would not verify,
 * pattern too short). */
MEMIF_CT_API int memif_ct_framegen_init(memif_ct_framegen_t *gen, const uint8_t *tmpl, uint32_t tmpl_size,
                                        const uint8_t *pattern, uint32_t pattern_size);
/* Write count frames with seqs first_seq, first_seq + 1, ... back to back into out (out_size
 * bytes). Returns count; MEMIF_CT_ERR_NULL (also a gen never set up), _ARG (a gen with bad sizes,
 * count > INT_MAX), _TOO_BIG (out too small), _OVERFLOW (seq past u64). */
MEMIF_CT_API int memif_ct_frames_stamp_packed(const memif_ct_framegen_t *gen, uint64_t first_seq, uint32_t count,
                                              uint8_t *out, size_t out_size);
/* Write frame first_seq + i into addrs[i] (each at least gen->size bytes, e.g. buffers from
 * memif_ct_tx_reserve() or a pool), for i < count. Returns count, or the errors above. */
MEMIF_CT_API int memif_ct_frames_stamp_addrs(const memif_ct_framegen_t *gen, uint64_t first_seq,
                                             uint8_t *const *addrs, uint32_t count);
/* Verdict (memif_ct_frame_verdict_t) on one frame of len bytes; *seq set when OK (seq may be NULL).
 * MEMIF_CT_ERR_NULL if frame is NULL with len > 0. */
MEMIF_CT_API int memif_ct_frame_verify(const uint8_t *frame, size_t len, uint64_t *seq);
/* Zero chk's counters and bind it to caller memory: bitmap ((window_bits + 7) / 8 bytes, zeroed
 * here) for seqs from window_base (a multiple of 8), queue_high (num_queues >= 1 entries).
 * MEMIF_CT_ERR_NULL, or _ARG (flags, a base not a multiple of 8, a window whose bytes overflow). */
MEMIF_CT_API int memif_ct_checker_init(memif_ct_checker_t *chk, uint8_t *bitmap, uint64_t window_base,
                                       uint64_t window_bits, uint64_t *queue_high, uint32_t num_queues,
                                       uint32_t flags);
/* Move chk to another window (bitmap already holding the seen bits of its span, base a multiple of 8),
 * keeping counters and queues: how a caller grows the window after a check stopped at need_seq. */
MEMIF_CT_API int memif_ct_checker_set_window(memif_ct_checker_t *chk, uint8_t *bitmap, uint64_t window_base,
                                             uint64_t window_bits);
/* Check count frames packed back to back in data (size bytes, lengths[i] each) received on RX
 * queue `queue`, into chk's counters; verdicts[i] and seqs[i] are written when not NULL. Returns
 * how many were checked: count, or fewer when a frame's seq lies outside a non-FIXED window
 * (chk->need_seq; that frame is not counted: grow the window, call again from it). Errors, with
 * nothing counted: MEMIF_CT_ERR_NULL, _ARG (queue >= num_queues, count > INT_MAX), _RANGE
 * (lengths run past size). */
MEMIF_CT_API int memif_ct_check_packed(memif_ct_checker_t *chk, uint32_t queue, const uint8_t *data, size_t size,
                                       const uint32_t *lengths, uint32_t count, uint8_t *verdicts,
                                       uint64_t *seqs);
/* As memif_ct_check_packed, for packets where they lie (memif_ct_rx_peek()'s output); a NULL
 * address with a length is MEMIF_CT_ERR_NULL, nothing counted. */
MEMIF_CT_API int memif_ct_check_pkts(memif_ct_checker_t *chk, uint32_t queue, const memif_ct_pkt_t *pkts,
                                     uint32_t count, uint8_t *verdicts, uint64_t *seqs);
/* Swap destination and source MAC of each of count frames packed in data (size bytes, lengths[i]
 * each; frames under 12 bytes are left alone), as testpmd's macswap does. Returns count;
 * MEMIF_CT_ERR_NULL, _ARG (count > INT_MAX), _RANGE (lengths run past size), nothing swapped. */
MEMIF_CT_API int memif_ct_macswap_packed(uint8_t *data, size_t size, const uint32_t *lengths, uint32_t count);

/* The buffer API in one call, for TX queues: a client's buffers come from its pool
 * (memif_ct_queue_set_pool), a server's are the ones its client posted (none may be reserved by
 * the caller, else MEMIF_CT_ERR_STATE). Each item goes into one buffer, in order, and is
 * published with memif_ct_tx_buffers()/memif_ct_tx_commit(), signalling like them. Returns how
 * many went: fewer when buffers or slots run short, or at the first item larger than its buffer
 * (MEMIF_CT_ERR_TOO_BIG if that is the first: send it with memif_ct_tx_burst(), which chains).
 * Also MEMIF_CT_ERR_NULL, _DIRECTION, _STATE (a client queue without a pool). */
/* Stamp frames first_seq .. first_seq + count - 1 of gen straight into TX buffers and send them;
 * also MEMIF_CT_ERR_ARG and _OVERFLOW as memif_ct_frames_stamp_packed(). */
MEMIF_CT_API int memif_ct_tx_frames(memif_ct_queue_t *q, const memif_ct_framegen_t *gen, uint64_t first_seq,
                                    uint32_t count);
/* Copy each packet (e.g. memif_ct_rx_peek()'s output of another queue) into a TX buffer, swapping
 * its MACs if macswap, and send them: a reflector's one copy. An empty packet ends the call before
 * it (MEMIF_CT_ERR_ARG if it is the first), in either role. */
MEMIF_CT_API int memif_ct_tx_pkts(memif_ct_queue_t *q, const memif_ct_pkt_t *pkts, uint32_t count, int macswap);

#ifdef __cplusplus
}
#endif

#endif /* MEMIF_CT_H */
