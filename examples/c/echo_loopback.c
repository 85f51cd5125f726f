/* echo_loopback.c - the memif-ct data path from plain C, no sockets and no Python.
 *
 * One in-process region holds an S2M and an M2S ring and their buffers (memif-protocol.md
 * section 5). A client queue sends a few packets S2M; the server queue receives them and echoes
 * them back M2S into buffers the client posted; the client checks they came back intact.
 *
 * Build against an installed memif-ct:
 *     cc -std=c11 -o echo_loopback echo_loopback.c $(pkg-config --cflags --libs memif-ct)
 */
#include <memif_ct.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG2_RING_SIZE 5
#define BUFFER_SIZE 2048
#define N_PKTS 4

static int fail(const char *what, int rc)
{
    fprintf(stderr, "echo_loopback: %s: %s (%d)\n", what, memif_ct_strerror(rc), rc);
    return 1;
}

int main(void)
{
    /* Lay out one region: S2M ring, M2S ring, then each ring's buffers. */
    memif_ct_layout_t layout;
    int rc = memif_ct_layout_init(&layout, 1, 1, LOG2_RING_SIZE, BUFFER_SIZE);
    if (rc != MEMIF_CT_OK)
        return fail("layout", rc);
    size_t size = (size_t)(layout.total_size + 4095) / 4096 * 4096;
    uint8_t *mem = aligned_alloc(4096, size);
    if (!mem)
        return fail("aligned_alloc", MEMIF_CT_ERR_NULL);
    memif_ct_region_t regions[1] = {{mem, size}};

    void *s2m = mem + memif_ct_layout_ring_offset(&layout, MEMIF_CT_RING_TYPE_S2M, 0);
    void *m2s = mem + memif_ct_layout_ring_offset(&layout, MEMIF_CT_RING_TYPE_M2S, 0);
    uint64_t s2m_buf = memif_ct_layout_buffer_offset(&layout, MEMIF_CT_RING_TYPE_S2M, 0);
    uint64_t m2s_buf = memif_ct_layout_buffer_offset(&layout, MEMIF_CT_RING_TYPE_M2S, 0);

    /* The client initialises the rings; then each side binds its queues. */
    memif_ct_queue_t client_tx, server_rx, server_tx, client_rx;
    if ((rc = memif_ct_ring_init(s2m, LOG2_RING_SIZE, 0, s2m_buf, BUFFER_SIZE)) ||
        (rc = memif_ct_ring_init(m2s, LOG2_RING_SIZE, 0, m2s_buf, BUFFER_SIZE)))
        return fail("ring_init", rc);
    if ((rc = memif_ct_queue_init(&client_tx, s2m, LOG2_RING_SIZE, MEMIF_CT_ROLE_CLIENT, MEMIF_CT_RING_TYPE_S2M,
                                  regions, 1, 0, s2m_buf, BUFFER_SIZE)) ||
        (rc = memif_ct_queue_init(&server_rx, s2m, LOG2_RING_SIZE, MEMIF_CT_ROLE_SERVER, MEMIF_CT_RING_TYPE_S2M,
                                  regions, 1, 0, 0, 0)) ||
        (rc = memif_ct_queue_init(&client_rx, m2s, LOG2_RING_SIZE, MEMIF_CT_ROLE_CLIENT, MEMIF_CT_RING_TYPE_M2S,
                                  regions, 1, 0, m2s_buf, BUFFER_SIZE)) ||
        (rc = memif_ct_queue_init(&server_tx, m2s, LOG2_RING_SIZE, MEMIF_CT_ROLE_SERVER, MEMIF_CT_RING_TYPE_M2S,
                                  regions, 1, 0, 0, 0)))
        return fail("queue_init", rc);
    memif_ct_refill(&client_rx); /* post every M2S buffer so the server can answer */

    /* Client -> server: packets of 64, 1500, 4000 (a chain of two buffers) and 9000 bytes. */
    uint32_t lengths[N_PKTS] = {64, 1500, 4000, 9000};
    size_t total = 0;
    for (int i = 0; i < N_PKTS; i++)
        total += lengths[i];
    uint8_t *data = malloc(total), *echo = malloc(total), *back = malloc(total);
    if (!data || !echo || !back)
        return fail("malloc", MEMIF_CT_ERR_NULL);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    int sent = memif_ct_tx_burst(&client_tx, data, total, lengths, N_PKTS);
    if (sent < 0)
        return fail("client tx", sent);

    uint32_t rx_lengths[N_PKTS];
    int got = memif_ct_rx_burst(&server_rx, echo, total, rx_lengths, N_PKTS);
    if (got < 0)
        return fail("server rx", got);

    /* Server -> client: echo what arrived. */
    int echoed = memif_ct_tx_burst(&server_tx, echo, total, rx_lengths, (uint32_t)got);
    if (echoed < 0)
        return fail("server tx", echoed);
    uint32_t back_lengths[N_PKTS];
    int returned = memif_ct_rx_burst(&client_rx, back, total, back_lengths, N_PKTS);
    if (returned < 0)
        return fail("client rx", returned);

    memif_ct_stats_t s2m_stats, m2s_stats;
    memif_ct_queue_stats(&server_rx, &s2m_stats);
    memif_ct_queue_stats(&client_rx, &m2s_stats);
    int intact = returned == N_PKTS && memcmp(back, data, total) == 0 &&
                 memcmp(back_lengths, lengths, sizeof(lengths)) == 0;
    printf("memif-ct %s (cache line %u)\n", memif_ct_version(), memif_ct_cacheline_size());
    printf("S2M: client sent %d packets, server received %d packets, %llu bytes (%llu chains)\n", sent, got,
           (unsigned long long)s2m_stats.bytes, (unsigned long long)s2m_stats.chains);
    printf("M2S: server echoed %d packets, client received %d packets, %llu bytes (%llu chains)\n", echoed,
           returned, (unsigned long long)m2s_stats.bytes, (unsigned long long)m2s_stats.chains);
    printf("echo %s: %zu bytes each way\n", intact ? "ok" : "MISMATCH", total);

    free(data);
    free(echo);
    free(back);
    free(mem);
    return intact ? 0 : 1;
}
