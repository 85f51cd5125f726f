/* Library identity, error strings and the exported constant table. */
#include "memif_ct.h"
#include "internal.h"

#if MEMIF_CT_HAVE_MOVSB
#include <cpuid.h>
#endif

#ifndef MEMIF_CT_BUILD_INFO
#define MEMIF_CT_BUILD_INFO "unknown"
#endif

#define STR_(x) #x
#define STR(x) STR_(x)

uint32_t memif_ct_abi_version(void) { return MEMIF_CT_ABI_VERSION; }

const char *memif_ct_version(void) { return MEMIF_CT_VERSION_STRING; }

uint32_t memif_ct_cacheline_size(void) { return MEMIF_CT_CACHELINE_SIZE; }

const char *memif_ct_build_info(void)
{
    return "cc=" __VERSION__ " cacheline=" STR(MEMIF_CT_CACHELINE_SIZE) " flags=" MEMIF_CT_BUILD_INFO;
}

const char *memif_ct_strerror(int err)
{
    switch (err) {
    case MEMIF_CT_OK: return "success";
    case MEMIF_CT_ERR_ARG: return "argument out of range";
    case MEMIF_CT_ERR_NULL: return "required pointer is NULL";
    case MEMIF_CT_ERR_LAYOUT: return "ring or buffers lie outside their region";
    case MEMIF_CT_ERR_COOKIE: return "ring header has a wrong cookie";
    case MEMIF_CT_ERR_DIRECTION: return "call does not fit the queue's role and ring type";
    case MEMIF_CT_ERR_OVERFLOW: return "size computation overflowed";
    case MEMIF_CT_ERR_ALIGN: return "ring is misaligned";
    case MEMIF_CT_ERR_TOO_BIG: return "packet is larger than the ring or buffer can hold";
    case MEMIF_CT_ERR_RANGE: return "address or buffer lies outside every segment or the pool";
    case MEMIF_CT_ERR_STATE: return "call does not fit the object's state";
    default: return "unknown error";
    }
}

size_t memif_ct_queue_sizeof(void) { return sizeof(memif_ct_queue_t); }

/* ---- the copy method (internal.h, shm_copy) ---- */

_Atomic int memif_ct_copy_movsb_;

/* rep movsb copies fast (ERMS: CPUID leaf 7, EBX bit 9), and this build may use it. */
static int movsb_available(void)
{
#if MEMIF_CT_HAVE_MOVSB
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 9) & 1u;
#else
    return 0;
#endif
}

__attribute__((constructor)) static void copy_method_init(void)
{
    atomic_store_explicit(&memif_ct_copy_movsb_, movsb_available(), memory_order_relaxed);
}

int memif_ct_copy_method(int method)
{
    if (method == MEMIF_CT_COPY_MEMCPY || (method == MEMIF_CT_COPY_MOVSB && movsb_available()))
        atomic_store_explicit(&memif_ct_copy_movsb_, method == MEMIF_CT_COPY_MOVSB, memory_order_relaxed);
    else if (method != MEMIF_CT_COPY_QUERY)
        return MEMIF_CT_ERR_ARG;
    return atomic_load_explicit(&memif_ct_copy_movsb_, memory_order_relaxed) ? MEMIF_CT_COPY_MOVSB
                                                                               : MEMIF_CT_COPY_MEMCPY;
}

#define C(name) { #name, (uint64_t)(MEMIF_CT_##name) }
static const memif_ct_constant_t constants[] = {
    C(COOKIE), C(VERSION), C(MSG_SIZE),
    C(MSG_TYPE_NONE), C(MSG_TYPE_ACK), C(MSG_TYPE_HELLO), C(MSG_TYPE_INIT), C(MSG_TYPE_ADD_REGION),
    C(MSG_TYPE_ADD_RING), C(MSG_TYPE_CONNECT), C(MSG_TYPE_CONNECTED), C(MSG_TYPE_DISCONNECT),
    C(RING_TYPE_S2M), C(RING_TYPE_M2S),
    C(MODE_ETHERNET), C(MODE_IP), C(MODE_PUNT_INJECT),
    C(ADD_RING_FLAG_S2M), C(DESC_FLAG_NEXT), C(RING_FLAG_MASK_INT),
    C(SECRET_SIZE), C(NAME_SIZE), C(DISCONNECT_STRING_SIZE), C(DESC_SIZE),
    C(MIN_LOG2_RING_SIZE), C(MAX_LOG2_RING_SIZE), C(MAX_REGIONS), C(MAX_RINGS_PER_DIRECTION),
    C(MIN_BUFFER_SIZE), C(MAX_BUFFER_SIZE), C(MAX_REGION_SIZE), C(ROLE_CLIENT), C(ROLE_SERVER),
};
#undef C

const memif_ct_constant_t *memif_ct_constants(size_t *count)
{
    if (count)
        *count = sizeof(constants) / sizeof(constants[0]);
    return constants;
}
