/* Guarded file mappings (mapguard.c): a model file too large to copy stays mmap'd, and a
 * fault reading it (the file was truncated under the model) must not kill the process. */
#ifndef RNNRT_MAPGUARD_H
#define RNNRT_MAPGUARD_H

#include <stddef.h>

/* Map `size` (> 0) bytes of file `fd` read-only and shared, under the guard: a SIGBUS
 * reading them maps zero pages over the whole mapping and marks it damaged, instead of
 * killing the process. Returns the mapping's slot (>= 0) and sets *addr; -1 when mmap
 * failed (errno says why); -2 when the guard cannot take it (its table is full, or another
 * SIGBUS handler has been installed in front of it) and nothing was mapped. */
int rnnrt_guard_map(int fd, size_t size, const void **addr);

/* 1 once a fault has hit the mapping in `slot` (it then reads as zeros), else 0. */
int rnnrt_guard_damaged(int slot);

/* Take the mapping out of the guard's table, then unmap it. */
void rnnrt_guard_unmap(int slot);

#endif
