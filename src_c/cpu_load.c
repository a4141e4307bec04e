/* How many cores other processes leave this one: a call wakes no more workers than that.
 *
 * On a busy machine a second thread of ours is a third runnable thread on two cores: the
 * scheduler then preempts one of them, and the call waits for it (issue 14: one busy
 * process beside a 2-thread call made it 100x slower; one thread, which competes with
 * nobody, kept its time). So before a call shares its work, it asks how many of the cores
 * it may run on are free: those of its affinity mask (taskset, a container's cpuset) less
 * the threads of other processes that are runnable, averaged over the last few
 * milliseconds.
 *
 * Runnable threads come from /proc/loadavg (its fourth field, "running/total": every
 * runnable thread of the machine at this instant), read with one pread of a descriptor kept
 * open (~1 us), at most every SAMPLE_NS, only by calls that would share their work. Our own
 * runnable threads (the caller that reads, and the workers that are awake) are not others.
 * Without /proc (not Linux, or hidden), every core of the mask counts as free.
 * RNNRT_FREE_CORES=N, read at load, skips the measurement and answers N: for a machine
 * whose /proc/loadavg counts other machines' threads (a container on a shared host) or
 * one reserved for rnnrt. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include "rnnrt.h"

#define SAMPLE_NS 2000000L          /* 2 ms */
#define STALE_NS 50000000L          /* an average older than 50 ms starts over */

static _Atomic int sampling;        /* one thread reads at a time; the others use the last */
static _Atomic long last_ns;
static _Atomic int others_milli = 0;    /* average runnable threads of others, x 1000 */
static _Atomic int cores = 0;           /* cores of the affinity mask at the last sample */
static _Atomic int fixed = 0;           /* > 0 fixes the answer (RNNRT_FREE_CORES, tests) */
static int fd = -2;                     /* /proc/loadavg, -1 when unavailable */

__attribute__((constructor)) static void free_cores_from_env(void)
{
    const char *env = getenv("RNNRT_FREE_CORES");
    long n = env ? strtol(env, NULL, 10) : 0;
    atomic_store(&fixed, n > 0 && n <= RNNRT_MAX_THREADS ? (int)n : 0);
}

static long monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int affinity_cores(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) {
        return CPU_COUNT(&set);
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Runnable threads on the machine now, or -1 when unknown. */
static int runnable_now(void)
{
    if (fd == -2) {
        fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
        return -1;
    }
    char buf[128];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) {
        return -1;
    }
    buf[n] = 0;
    /* "0.52 0.58 0.59 3/467 12345": skip three fields to the running count. */
    char *p = buf;
    for (int field = 0; field < 3; field++) {
        while (*p && *p != ' ') {
            p++;
        }
        while (*p == ' ') {
            p++;
        }
    }
    char *end;
    long running = strtol(p, &end, 10);
    return end != p && *end == '/' ? (int)running : -1;
}

static void sample(long now)
{
    int n_cores = affinity_cores();
    int running = runnable_now();
    long since = now - atomic_load(&last_ns);
    atomic_store(&cores, n_cores);
    atomic_store(&last_ns, now);
    if (running < 0) {
        atomic_store(&others_milli, 0);
        return;
    }
    int others = running - 1 - rnnrt_workers_awake();
    others = others > 0 ? others : 0;
    /* Exponential average over ~4 samples; a stale one is replaced. */
    int avg = atomic_load(&others_milli);
    avg = since > STALE_NS ? others * 1000 : avg + (others * 1000 - avg) / 4;
    atomic_store(&others_milli, avg);
}

int rnnrt_free_cores(void)
{
    int f = atomic_load_explicit(&fixed, memory_order_relaxed);
    if (f > 0) {
        return f;
    }
    long now = monotonic_ns();
    if ((now - atomic_load(&last_ns) >= SAMPLE_NS || atomic_load(&cores) == 0) &&
            !atomic_exchange(&sampling, 1)) {
        sample(now);
        atomic_store(&sampling, 0);
    }
    int n = atomic_load(&cores);
    n = n > 0 ? n : 1;
    /* Rounded: more than half a core kept busy by others takes that core. */
    int free_cores = (int)((n * 1000L - atomic_load(&others_milli) + 500) / 1000);
    return free_cores < 1 ? 1 : free_cores > n ? n : free_cores;
}

void rnnrt_free_cores_fix(int n)
{
    atomic_store(&fixed, n > 0 ? n : 0);
}
