/* A per-thread timer that bounds one system call on a file the peer shares (memif_ct.h,
 * "Interrupts", says why and what the application must leave alone).
 *
 * The timer is periodic while armed: if one expiry is spent before the guarded call even starts
 * (the thread was preempted for longer than the period), the next one still interrupts it, so a
 * blocked call returns within one period of blocking. The handler does nothing: its only job is
 * that the blocked call returns EINTR instead of restarting (no SA_RESTART). It touches no state,
 * so it is async-signal-safe whatever it interrupts.
 *
 * Timers are made with the raw system calls: glibc before 2.34 keeps timer_create in librt, and
 * SIGEV_THREAD_ID timers need nothing of glibc's wrappers. */
#define _GNU_SOURCE
#include "guard.h"
#include "memif_ct.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MEMIF_CT_GUARD_SIGNAL
#define MEMIF_CT_GUARD_SIGNAL (SIGRTMAX - 3)
#endif
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

typedef struct {
    int state;   /* 0: not set up in this thread; 1: ready; < 0: -errno, this thread is unguarded */
    int timer;   /* the kernel's timer id, when ready */
    int unblock; /* the thread had the signal blocked when set up: unblock it around each call */
} guard_t;

static _Thread_local guard_t guard;

static pthread_once_t process_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_exit_key; /* its destructor deletes an exiting thread's timer */
static int process_state;             /* 0, or -errno: no thread can be guarded */
static int guard_signal;

static void on_guard_signal(int sig) { (void)sig; }

static void delete_timer_at_thread_exit(void *p)
{
    guard_t *g = p;
    if (g->state == 1)
        syscall(SYS_timer_delete, g->timer);
    g->state = 0;
}

/* POSIX timers are not inherited: the forked child's one thread sets itself up again. Its old
 * timer id could name a timer the child makes for itself later. */
static void forget_timer_in_child(void) { guard.state = 0; }

static void set_up_process(void)
{
    guard_signal = MEMIF_CT_GUARD_SIGNAL;
    if (pthread_key_create(&thread_exit_key, delete_timer_at_thread_exit) != 0 ||
        pthread_atfork(NULL, NULL, forget_timer_in_child) != 0) {
        process_state = -EAGAIN;
        return;
    }
    struct sigaction sa;
    if (sigaction(guard_signal, NULL, &sa) != 0) {
        process_state = -errno;
        return;
    }
    if ((sa.sa_flags & SA_SIGINFO) || sa.sa_handler != SIG_DFL) {
        process_state = -EBUSY; /* the application's signal (or ignored): not ours to take */
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_guard_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: the interrupted call returns EINTR */
    if (sigaction(guard_signal, &sa, NULL) != 0)
        process_state = -errno;
}

static int set_up_thread(void)
{
    pthread_once(&process_once, set_up_process);
    if (process_state < 0)
        return guard.state = process_state;
    struct sigevent sev;
    memset(&sev, 0, sizeof(sev));
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = guard_signal;
    sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
    int timer = -1;
    if (syscall(SYS_timer_create, CLOCK_MONOTONIC, &sev, &timer) != 0)
        return guard.state = -errno; /* e.g. EAGAIN: RLIMIT_SIGPENDING reached */
    if (pthread_setspecific(thread_exit_key, &guard) != 0) {
        syscall(SYS_timer_delete, timer);
        return guard.state = -ENOMEM;
    }
    sigset_t mask;
    pthread_sigmask(SIG_BLOCK, NULL, &mask);
    guard.unblock = sigismember(&mask, guard_signal) == 1;
    guard.timer = timer;
    return guard.state = 1;
}

static void set_signal_blocked(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, guard_signal);
    pthread_sigmask(how, &set, NULL);
}

int memif_ct_guard_arm(void)
{
    if (guard.state == 0)
        set_up_thread();
    if (guard.state != 1)
        return 0;
    if (guard.unblock)
        set_signal_blocked(SIG_UNBLOCK);
    const long ns = MEMIF_CT_EVENTFD_TIMEOUT_NS;
    const struct itimerspec every = {{ns / 1000000000L, ns % 1000000000L}, {ns / 1000000000L, ns % 1000000000L}};
    if (syscall(SYS_timer_settime, guard.timer, 0, &every, NULL) != 0) {
        if (guard.unblock)
            set_signal_blocked(SIG_BLOCK);
        return 0;
    }
    return 1;
}

void memif_ct_guard_disarm(void)
{
    static const struct itimerspec stop;
    syscall(SYS_timer_settime, guard.timer, 0, &stop, NULL);
    /* An expiry that came after the guarded call returned was delivered (to the no-op handler)
     * on the way out of the system call above, while the signal was still unblocked. */
    if (guard.unblock)
        set_signal_blocked(SIG_BLOCK);
}

int memif_ct_eventfd_guard(void)
{
    if (guard.state == 0)
        set_up_thread();
    return guard.state == 1 ? guard_signal : guard.state;
}
