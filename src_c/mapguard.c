/* Guarded file mappings: a SIGBUS reading a model file that was truncated under the model
 * becomes a flag that Python turns into FormatError, instead of the death of the process.
 *
 * A MAP_SHARED mapping of a file faults with SIGBUS (BUS_ADRERR) on any page past the file's
 * end, and `cp new.rnnrt live.rnnrt` truncates the live file before it writes the new one.
 * The handler looks the faulting address up in a table of the mappings made here; inside
 * one, it maps anonymous zero pages over the whole mapping (so the faulting instruction, run
 * again, reads zeros, and nothing else in that mapping can fault) and marks it damaged:
 * after each C call the engine checks the mark and raises. Every other SIGBUS goes to the
 * handler that was installed before ours, or to the default action (the process dies, as
 * it would have without us).
 *
 * The handler is installed on the first guarded mapping (processes with small models,
 * which are copied into memory, never install one). If another handler has been installed
 * in front of it since (faulthandler.enable() after that first mapping, say), a fault
 * reaches that one first and cannot be recovered from here: rnnrt_guard_map then refuses
 * new mappings and the caller copies the file instead.
 *
 * Threads: the handler runs in the faulting thread, possibly in several at once; it reads
 * the table with atomic loads and writes only the damaged flag and the zero pages (mapping
 * them twice is harmless). The table is written under a mutex, never by the handler. */
#define _DEFAULT_SOURCE        /* MAP_ANONYMOUS, sigaction, siginfo_t under -std=c11 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "mapguard.h"

/* Mappings are made only for files over the private-copy threshold (256 MiB by default),
 * so a process holds a few; a full table makes the caller copy instead. */
#define GUARD_SLOTS 1024

typedef struct {
    _Atomic uintptr_t start;   /* 0: a free slot */
    _Atomic size_t size;
    atomic_int damaged;
} guarded_map;

static guarded_map table[GUARD_SLOTS];
static atomic_int slots_used;              /* the handler scans slots below this */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static int installed;                      /* under table_lock */
static struct sigaction previous;          /* SIGBUS's disposition before ours */

/* A SIGBUS that is not ours: to the handler before ours, or to the default action. */
static void pass_on(int sig, siginfo_t *info, void *context)
{
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        if (previous.sa_flags & SA_SIGINFO) {
            previous.sa_sigaction(sig, info, context);
        } else {
            previous.sa_handler(sig);
        }
        return;
    }
    if (previous.sa_handler == SIG_IGN && info->si_code <= 0) {
        return;                    /* sent by kill() and ignored before we came: still so */
    }
    /* The default action (an ignored fault takes it too, as the kernel would have it). */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, NULL);
    if (info->si_code <= 0) {
        raise(sig);                /* sent: delivered again, to the default, on our return */
    }
    /* A fault: on return the instruction runs again, faults again and takes the default. */
}

static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    if (info->si_code == BUS_ADRERR) {         /* a page past the end of a mapped file */
        uintptr_t addr = (uintptr_t)info->si_addr;
        int n = atomic_load_explicit(&slots_used, memory_order_acquire);
        for (int i = 0; i < n; i++) {
            uintptr_t start = atomic_load_explicit(&table[i].start, memory_order_acquire);
            size_t size = atomic_load_explicit(&table[i].size, memory_order_relaxed);
            if (start != 0 && addr - start < size) {
                /* Marked first: a thread that reads the zeros finds the mark after its call. */
                atomic_store_explicit(&table[i].damaged, 1, memory_order_seq_cst);
                /* mmap is a plain system call on Linux: safe in a handler. */
                int saved = errno;
                void *p = mmap((void *)start, size, PROT_READ,
                               MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                errno = saved;
                if (p == MAP_FAILED) {
                    break;                     /* cannot recover: die as without us */
                }
                return;
            }
        }
    }
    pass_on(sig, info, context);
}

/* Install the handler the first time; afterwards, whether it is still the one in front.
 * Called under table_lock. */
static int guard_in_front(void)
{
    struct sigaction now;
    if (!installed) {
        if (sigaction(SIGBUS, NULL, &previous) != 0) {
            return 0;
        }
        memset(&now, 0, sizeof now);
        now.sa_sigaction = on_sigbus;
        now.sa_flags = SA_SIGINFO | SA_ONSTACK;    /* the alternate stack, where one is set */
        sigemptyset(&now.sa_mask);
        if (sigaction(SIGBUS, &now, NULL) != 0) {
            return 0;
        }
        installed = 1;
        return 1;
    }
    return sigaction(SIGBUS, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
           now.sa_sigaction == on_sigbus;
}

int rnnrt_guard_map(int fd, size_t size, const void **addr)
{
    pthread_mutex_lock(&table_lock);
    int slot = -2;
    if (guard_in_front()) {
        for (int i = 0; i < GUARD_SLOTS; i++) {
            if (atomic_load(&table[i].start) == 0) {
                slot = i;
                break;
            }
        }
    }
    int err = 0;
    if (slot >= 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            err = errno;
            slot = -1;
        } else {
            atomic_store(&table[slot].damaged, 0);
            atomic_store(&table[slot].size, size);
            atomic_store_explicit(&table[slot].start, (uintptr_t)p, memory_order_release);
            if (slot >= atomic_load(&slots_used)) {
                atomic_store_explicit(&slots_used, slot + 1, memory_order_release);
            }
            *addr = p;
        }
    }
    pthread_mutex_unlock(&table_lock);
    errno = err;
    return slot;
}

int rnnrt_guard_damaged(int slot)
{
    return atomic_load_explicit(&table[slot].damaged, memory_order_acquire);
}

void rnnrt_guard_unmap(int slot)
{
    pthread_mutex_lock(&table_lock);
    void *start = (void *)atomic_load(&table[slot].start);
    size_t size = atomic_load(&table[slot].size);
    /* Out of the table first: a mapping made later at this address is not ours. */
    atomic_store(&table[slot].start, 0);
    pthread_mutex_unlock(&table_lock);
    munmap(start, size);
}
