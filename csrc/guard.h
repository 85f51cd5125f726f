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

#include <sys/types.h>
#include <sys/uio.h>

/* Arm the calling thread's timer (setting the thread up the first time). 1 if armed: call
 * memif_ct_guard_disarm() right after the one system call it guards; 0 if this thread cannot be
 * guarded (memif_ct_eventfd_guard() says why), and the call is unbounded. */
int memif_ct_guard_arm(void);
/* Stop the calling thread's timer (after a memif_ct_guard_arm() that returned 1). */
void memif_ct_guard_disarm(void);

/* preadv2(fd, iov, 1, current position, RWF_NOWAIT) as a raw system call (glibc's wrapper is a
 * 2.26 symbol); -1 with errno ENOSYS where the call is unknown. Weak, so that a test linked with
 * the static library can stand in for a kernel without RWF_NOWAIT on eventfds; with hidden
 * visibility nothing outside the library can. */
__attribute__((weak)) ssize_t memif_ct_read_nowait(int fd, struct iovec *iov);

#endif /* MEMIF_CT_GUARD_H */
