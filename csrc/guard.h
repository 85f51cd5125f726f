/* guard.h - internal to the library: bounding one system call on a file the peer shares.
 *
 *     int armed = memif_ct_guard_arm();
 *     r = write(fd, ...);          // blocked? EINTR within MEMIF_CT_EVENTFD_TIMEOUT_NS
 *     if (armed)
 *         memif_ct_guard_disarm();
 *
 * See "Interrupts" in memif_ct.h for the signal, the per-thread timer and the fallback. */
#ifndef MEMIF_CT_GUARD_H
#define MEMIF_CT_GUARD_H

/* Arm the calling thread's timer (setting the thread up the first time). 1 if armed: call
 * memif_ct_guard_disarm() right after the one system call it guards; 0 if this thread cannot be
 * guarded (memif_ct_eventfd_guard() says why), and the call is unbounded. */
int memif_ct_guard_arm(void);
/* Stop the calling thread's timer (after a memif_ct_guard_arm() that returned 1). */
void memif_ct_guard_disarm(void);

#endif /* MEMIF_CT_GUARD_H */
