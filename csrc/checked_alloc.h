/* Force-included (gcc -include) into every upstream source file after console.h:
 * upstream never checks malloc/calloc/realloc, so a failed allocation crashed the
 * process a moment later. Each one now goes through a checked version that reports
 * DARKNET_ERR_MEMORY through darknet_fail() (OutOfMemoryError in Python), and that
 * charges allocations against the per-thread budget pdn_load() sets for a network. */
#ifndef PYDARKNET_CHECKED_ALLOC_H
#define PYDARKNET_CHECKED_ALLOC_H
/* the real declarations first: the macros below must not rename them */
#include <stdlib.h>
#include <string.h>

void *pdn_checked_malloc(size_t size, const char *file, int line);
void *pdn_checked_calloc(size_t count, size_t size, const char *file, int line);
void *pdn_checked_realloc(void *old, size_t size, const char *file, int line);
char *pdn_checked_strdup(const char *text, const char *file, int line);

/* Bytes the allocations on this thread may still take; SIZE_MAX: no budget. */
extern _Thread_local size_t pdn_alloc_budget;

#define malloc(size) pdn_checked_malloc((size), __FILE__, __LINE__)
#define calloc(count, size) pdn_checked_calloc((count), (size), __FILE__, __LINE__)
#define realloc(old, size) pdn_checked_realloc((old), (size), __FILE__, __LINE__)
#define strdup(text) pdn_checked_strdup((text), __FILE__, __LINE__)
#endif
