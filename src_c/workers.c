/* rnnrt's threads: a call's work is cut into shares, and whoever is free claims them.
 *
 * A job is n_phases phases of n_shares shares. The caller publishes it, rings as many workers
 * as there are free cores (cpu_load.c says how many), and then takes shares itself like any
 * worker: a share that nobody has claimed when the caller is free is the caller's. So a call
 * never waits for a thread that is not running; it waits only for a share another thread has
 * already begun. The shares of phase p start once every share of phase p - 1 is done (a
 * recurrent layer's step reads the state that every share of the step before wrote), so a
 * phase ends when its shares are done, not when every thread has arrived; a worker that wakes
 * late joins the phase in progress, or finds nothing left and goes back to sleep.
 *
 * Why not OpenMP: a parallel region ends at a barrier that every thread of its team must
 * reach, running or not. On a busy machine a descheduled team thread held each batch-1 step
 * for milliseconds (issue 14: 10-24 ms calls where one thread took 81 us).
 *
 * Each share has an owner, the thread that runs it when all are on time (so that its weights
 * stay in that core's cache); a thread done with its own takes another's only after a short
 * grace for its owner, or at once when the owner is asleep or was late before in the job.
 *
 * Claims: claim[k] holds (job generation << 32) | the next phase share k will run. A thread
 * takes share k of phase p with a compare-and-swap from (g, p) to (g, p + 1), so every
 * (phase, share) runs exactly once, and a worker still holding an older generation (it read
 * the job, then slept) can claim nothing of a later job. `done` counts the shares run: phase p
 * is complete once done >= (p + 1) * n_shares. After the last share the caller marks every
 * claim CLOSED before it writes the next job's fields, so a stale worker that read new fields
 * with the old generation cannot match a claim either.
 *
 * Which thread runs a share does not change what it computes: results are the same bits
 * whether the workers took part or the caller did everything. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif
#include "rnnrt.h"

#define MAX_WORKERS (RNNRT_MAX_THREADS - 1)
#define CLOSED 0xFFFFFFFFu
/* A worker that has run a job spins this long for the next before it sleeps: back-to-back
 * calls (a stream's steps, a sequence of layers) then find it awake, and an idle process
 * costs nothing. */
#define WORKER_SPIN_NS 50000L
/* A thread with nothing to claim spins this long for its phase to complete, then yields. */
#define PHASE_SPIN_NS 20000L
/* A thread done with its own shares leaves another's this long for its owner before it
 * takes it: threads on time start a phase within a microsecond of each other, and a share
 * run by another core reads its weights from there (a GRU-512 step whose threads took each
 * other's shares ran 2.2x slower than with each keeping its own). An owner asleep, or once
 * late in this job, gets no such wait. */
#define STEAL_GRACE_NS 5000L

typedef struct {
    _Alignas(64) _Atomic uint64_t v;
} padded_claim;

typedef struct {
    pthread_t thread;
    _Alignas(64) _Atomic uint32_t bell;     /* futex word, rung to wake the worker */
    _Atomic int sleeping;
} worker;

typedef void (*share_fn)(void *ctx, int phase, int share, int slot);

static struct {
    _Alignas(64) _Atomic uint32_t gen;      /* the last job published; 0: none yet */
    _Atomic int owned;                      /* a caller holds the job slot */
    /* The job: written only between jobs, read by workers once they see its generation. */
    _Atomic(share_fn) fn;
    _Atomic(void *) ctx;
    _Atomic int n_phases, n_shares, invited;
    _Alignas(64) _Atomic uint64_t done;
    padded_claim claim[RNNRT_MAX_SHARES];
    _Atomic int absent[RNNRT_MAX_THREADS];  /* this job: the slot was once late for a share */
    pthread_mutex_t grow;                   /* held while workers are started */
    _Atomic int n_workers, awake;
    worker workers[MAX_WORKERS];
    _Atomic uint64_t jobs, jobs_alone, shares_by_workers;
    _Atomic int hold;                       /* tests: workers take no shares */
} pool = {.grow = PTHREAD_MUTEX_INITIALIZER};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

#ifdef __linux__
static void bell_wait(_Atomic uint32_t *bell, uint32_t seen)
{
    syscall(SYS_futex, bell, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

static void bell_ring(_Atomic uint32_t *bell)
{
    atomic_fetch_add(bell, 1);
    syscall(SYS_futex, bell, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
#else
/* No futex: sleep in short naps (a ring only bumps the word). */
static void bell_wait(_Atomic uint32_t *bell, uint32_t seen)
{
    while (atomic_load(bell) == seen) {
        struct timespec nap = {0, 200000};
        nanosleep(&nap, NULL);
    }
}

static void bell_ring(_Atomic uint32_t *bell)
{
    atomic_fetch_add(bell, 1);
}
#endif

/* Until done reaches `target` (the phase in progress is complete), or, for a worker, until
 * the job is no longer generation g. Spins, then yields its core to whoever needs it. */
static void wait_for_phase(uint32_t g, uint64_t target, int is_caller)
{
    long start = 0;
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&pool.done, memory_order_acquire) >= target) {
            return;
        }
        if (!is_caller && atomic_load_explicit(&pool.gen, memory_order_acquire) != g) {
            return;
        }
        if ((i & 63) == 63) {
            long t = now_ns();
            start = start ? start : t;
            if (t - start > PHASE_SPIN_NS) {
                sched_yield();
                continue;
            }
        }
        cpu_relax();
    }
}

/* Whether the thread of `slot` is not there to run its shares now: asleep, held (tests), or
 * already late once in this job. */
static int owner_away(int slot)
{
    if (atomic_load_explicit(&pool.absent[slot], memory_order_relaxed)) {
        return 1;
    }
    return slot > 0 && (atomic_load_explicit(&pool.workers[slot - 1].sleeping,
                                             memory_order_relaxed) ||
                        atomic_load_explicit(&pool.hold, memory_order_relaxed));
}

/* Leave share k of phase p (claim word `want`) to its owner for up to STEAL_GRACE_NS;
 * an owner that lets it pass is marked away for the rest of the job. */
static void grace_for_owner(int k, uint64_t want, int owner)
{
    long start = now_ns();
    for (unsigned i = 0;; i++) {
        if (atomic_load_explicit(&pool.claim[k].v, memory_order_relaxed) != want ||
                owner_away(owner)) {
            return;
        }
        if ((i & 15) == 15 && now_ns() - start > STEAL_GRACE_NS) {
            atomic_store_explicit(&pool.absent[owner], 1, memory_order_relaxed);
            return;
        }
        cpu_relax();
    }
}

static int try_claim(int k, uint64_t want)
{
    uint64_t c = atomic_load_explicit(&pool.claim[k].v, memory_order_relaxed);
    return c == want && atomic_compare_exchange_strong_explicit(
        &pool.claim[k].v, &c, c + 1, memory_order_acq_rel, memory_order_relaxed);
}

/* Claim and run shares of job g until every phase is done (the caller) or nothing of job g
 * is left to claim (a worker). A thread runs its own shares first (share k is slot
 * k % invited's: with all threads on time each runs the same shares every phase, and their
 * weights stay in its core's cache), then any other still unclaimed, after a grace for its
 * owner (grace_for_owner). */
static void take_part(uint32_t g, int slot, int is_caller)
{
    share_fn fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
    const int nph = atomic_load_explicit(&pool.n_phases, memory_order_relaxed);
    const int nsh = atomic_load_explicit(&pool.n_shares, memory_order_relaxed);
    const int invited = atomic_load_explicit(&pool.invited, memory_order_relaxed);
    const uint64_t tag = (uint64_t)g << 32;
    if (nsh < 1 || nsh > RNNRT_MAX_SHARES || nph < 1 || invited < 1 ||
            invited > RNNRT_MAX_THREADS) {
        return;                 /* a later job's fields, half written: its claims won't match */
    }
    for (;;) {
        if (!is_caller && atomic_load_explicit(&pool.gen, memory_order_acquire) != g) {
            return;
        }
        const uint64_t p = atomic_load_explicit(&pool.done, memory_order_acquire) / nsh;
        if (p >= (uint64_t)nph) {
            return;
        }
        const uint64_t want = tag | p;
        int ran = 0;
        for (int pass = 0; pass < 2; pass++) {      /* own shares, then the others' */
            for (int k = 0; k < nsh; k++) {
                const int owner = k % invited;
                if ((owner == slot) != (pass == 0)) {
                    continue;
                }
                if (pass == 1 && !owner_away(owner)) {
                    grace_for_owner(k, want, owner);
                }
                if (try_claim(k, want)) {
                    if (atomic_load_explicit(&pool.absent[slot], memory_order_relaxed)) {
                        atomic_store_explicit(&pool.absent[slot], 0, memory_order_relaxed);
                    }
                    fn(ctx, (int)p, k, slot);
                    atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
                    ran++;
                }
            }
        }
        if (!is_caller && ran) {
            atomic_fetch_add_explicit(&pool.shares_by_workers, ran, memory_order_relaxed);
        }
        if (!ran) {
            wait_for_phase(g, (p + 1) * nsh, is_caller);
        }
    }
}

/* Spin for a job newer than `seen`, then sleep until rung. The Dekker pair with
 * rnnrt_try_shares (sleeping stored, then gen loaded; gen stored, then sleeping loaded, all
 * seq_cst) means a job is never published to a worker that neither sees it nor is rung. */
static uint32_t wait_for_job(worker *w, uint32_t seen)
{
    for (;;) {
        long start = now_ns();
        for (unsigned i = 0;; i++) {
            uint32_t g = atomic_load_explicit(&pool.gen, memory_order_acquire);
            if (g != seen) {
                return g;
            }
            if ((i & 63) == 63 && now_ns() - start > WORKER_SPIN_NS) {
                break;
            }
            cpu_relax();
        }
        uint32_t bell = atomic_load(&w->bell);
        atomic_store(&w->sleeping, 1);
        if (atomic_load(&pool.gen) == seen) {
            atomic_fetch_sub(&pool.awake, 1);
            bell_wait(&w->bell, bell);
            atomic_fetch_add(&pool.awake, 1);
        }
        atomic_store(&w->sleeping, 0);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    const int slot = (int)(w - pool.workers) + 1;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_for_job(w, seen);
        if (slot < atomic_load_explicit(&pool.invited, memory_order_relaxed) &&
                !atomic_load_explicit(&pool.hold, memory_order_relaxed)) {
            take_part(seen, slot, 0);
        }
    }
    return NULL;
}

/* A forked child has none of the parent's workers: it starts with an empty pool. */
static void forget_workers(void)
{
    atomic_store(&pool.n_workers, 0);
    atomic_store(&pool.awake, 0);
    atomic_store(&pool.owned, 0);
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pool.grow = fresh;
}

__attribute__((constructor)) static void forget_workers_on_fork(void)
{
    pthread_atfork(NULL, NULL, forget_workers);
}

/* Start workers until there are n (or as many as the system allows); returns how many
 * there are. Workers block the asynchronous signals (Python handles those on its main
 * thread) but not the ones a fault raises in the thread itself. */
static int ensure_workers(int n)
{
    n = n < MAX_WORKERS ? n : MAX_WORKERS;
    int have = atomic_load(&pool.n_workers);
    if (have >= n) {
        return have;
    }
    pthread_mutex_lock(&pool.grow);
    sigset_t all, old;
    sigfillset(&all);
    int faults[] = {SIGBUS, SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGABRT};
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        sigdelset(&all, faults[i]);
    }
    pthread_sigmask(SIG_BLOCK, &all, &old);
    have = atomic_load(&pool.n_workers);
    while (have < n) {
        worker *w = &pool.workers[have];
        atomic_store(&w->sleeping, 0);
        atomic_fetch_add(&pool.awake, 1);
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            atomic_fetch_sub(&pool.awake, 1);
            break;
        }
        pthread_detach(w->thread);
        atomic_store(&pool.n_workers, ++have);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_mutex_unlock(&pool.grow);
    return have;
}

static void run_alone(int n_phases, int n_shares, share_fn fn, void *ctx)
{
    for (int p = 0; p < n_phases; p++) {
        for (int k = 0; k < n_shares; k++) {
            fn(ctx, p, k, 0);
        }
    }
}

static int try_shares(int threads, int n_phases, int n_shares, share_fn fn, void *ctx,
                      int busy_cores_too)
{
    int invite = threads < n_shares ? threads : n_shares;
    invite = invite < RNNRT_MAX_THREADS ? invite : RNNRT_MAX_THREADS;
    if (invite > 1 && !busy_cores_too) {
        int free_cores = rnnrt_free_cores();
        invite = invite < free_cores ? invite : free_cores;
    }
    if (invite <= 1 || n_phases < 1 || n_shares > RNNRT_MAX_SHARES ||
            atomic_exchange(&pool.owned, 1)) {
        /* No core to share with, or another call of this process has the workers. */
        atomic_fetch_add_explicit(&pool.jobs_alone, 1, memory_order_relaxed);
        return 0;
    }
    int have = ensure_workers(invite - 1);
    invite = invite < have + 1 ? invite : have + 1;
    uint32_t g = atomic_load(&pool.gen) + 1;
    g = g ? g : 1;
    atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
    atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
    atomic_store_explicit(&pool.n_phases, n_phases, memory_order_relaxed);
    atomic_store_explicit(&pool.n_shares, n_shares, memory_order_relaxed);
    atomic_store_explicit(&pool.invited, invite, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    for (int k = 0; k < n_shares; k++) {
        atomic_store_explicit(&pool.claim[k].v, (uint64_t)g << 32, memory_order_relaxed);
    }
    for (int i = 0; i < invite; i++) {
        atomic_store_explicit(&pool.absent[i], 0, memory_order_relaxed);
    }
    atomic_store(&pool.gen, g);     /* publishes the fields above (seq_cst: see wait_for_job) */
    for (int i = 0; i < invite - 1; i++) {
        worker *w = &pool.workers[i];
        if (atomic_load(&w->sleeping)) {
            bell_ring(&w->bell);
        }
    }
    take_part(g, 0, 1);
    for (int k = 0; k < n_shares; k++) {
        atomic_store_explicit(&pool.claim[k].v, ((uint64_t)g << 32) | CLOSED,
                              memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&pool.jobs, 1, memory_order_relaxed);
    atomic_store_explicit(&pool.owned, 0, memory_order_release);
    return 1;
}

int rnnrt_try_shares(int threads, int n_phases, int n_shares, share_fn fn, void *ctx)
{
    return try_shares(threads, n_phases, n_shares, fn, ctx, 0);
}

/* One phase of long shares may take busy cores too. A share then waits for no other, and
 * a worker the scheduler holds back delays the call by at most a time slice against a
 * share of several: on two cores held by two busy processes, two threads get half the
 * machine where one gets a third (scenario C, LSTM B=64: 15 ms against 23-27 ms). */
int rnnrt_try_long_shares(int threads, int n_shares, share_fn fn, void *ctx)
{
    return try_shares(threads, 1, n_shares, fn, ctx, 1);
}

void rnnrt_run_shares(int threads, int n_phases, int n_shares, share_fn fn, void *ctx)
{
    if (n_phases >= 1 && n_shares >= 1 &&
            !rnnrt_try_shares(threads, n_phases, n_shares, fn, ctx)) {
        run_alone(n_phases, n_shares, fn, ctx);
    }
}

int rnnrt_workers_awake(void)
{
    return atomic_load_explicit(&pool.awake, memory_order_relaxed);
}

void rnnrt_workers_stats(rnnrt_workers_info *info)
{
    info->workers = atomic_load(&pool.n_workers);
    info->awake = atomic_load(&pool.awake);
    info->jobs = atomic_load(&pool.jobs);
    info->jobs_alone = atomic_load(&pool.jobs_alone);
    info->shares_by_workers = atomic_load(&pool.shares_by_workers);
}

void rnnrt_workers_hold(int hold)
{
    atomic_store(&pool.hold, hold);
}
