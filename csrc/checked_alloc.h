/* Force-included (gcc -include) into every upstream source file after console.h:
 * upstream never checks malloc/calloc/realloc, so a failed allocation crashed the
 * process a moment later. Each one now goes through a checked version that reports
 * DARKNET_ERR_MEMORY through darknet_fail() (OutOfMemoryError in Python), and that
 * charges allocations against the per-thread budget pdn_load() sets for a network,
 * and frees go through pdn_checked_free() so that a section's scope can forget them. */
#ifndef PYDARKNET_CHECKED_ALLOC_H
#define PYDARKNET_CHECKED_ALLOC_H
/* the real declarations first: the macros below must not rename them */
#include <stdlib.h>
#include <string.h>

void *pdn_checked_malloc(size_t size, const char *file, int line);
void *pdn_checked_calloc(size_t count, size_t size, const char *file, int line);
void *pdn_checked_realloc(void *old, size_t size, const char *file, int line);
char *pdn_checked_strdup(const char *text, const char *file, int line);

void pdn_checked_free(void *memory);

/* Bytes the allocations on this thread may still take; SIZE_MAX: no budget. */
extern _Thread_local size_t pdn_alloc_budget;

/* What a failing cfg section leaves behind. Between pdn_alloc_scope_begin() and
 * pdn_alloc_scope_end() this thread's allocations are recorded and its frees forget
 * them; after a failure, and after the failure's own cleanup has freed what it owns,
 * pdn_alloc_scope_sweep() frees what is still recorded and closes the scope. */
void pdn_alloc_scope_begin(void);
void pdn_alloc_scope_end(void);
void pdn_alloc_scope_sweep(void);

#define malloc(size) pdn_checked_malloc((size), __FILE__, __LINE__)
#define calloc(count, size) pdn_checked_calloc((count), (size), __FILE__, __LINE__)
#define realloc(old, size) pdn_checked_realloc((old), (size), __FILE__, __LINE__)
#define strdup(text) pdn_checked_strdup((text), __FILE__, __LINE__)
#define free(memory) pdn_checked_free(memory)
#endif
