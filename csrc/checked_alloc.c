/* The checked allocations behind checked_alloc.h (see there). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"

_Thread_local size_t pdn_alloc_budget = SIZE_MAX;

/* Charges size bytes to the budget, or fails naming what was asked for. */
static void charge(size_t size, const char *file, int line)
{
    if(pdn_alloc_budget == SIZE_MAX) return;
    if(size > pdn_alloc_budget){
        darknet_fail(DARKNET_ERR_MEMORY, "this network needs more memory than its budget allows "
                "(%zu more bytes asked for at %s:%d, %zu left); raise max_memory or load a smaller "
                "network, input size or batch", size, file, line, pdn_alloc_budget);
    }
    pdn_alloc_budget -= size;
}

static void *checked(void *memory, size_t size, const char *file, int line)
{
    if(!memory && size){
        darknet_fail(DARKNET_ERR_MEMORY, "out of memory: %zu bytes could not be allocated (at %s:%d)",
                size, file, line);
    }
    return memory;
}

void *pdn_checked_malloc(size_t size, const char *file, int line)
{
    charge(size, file, line);
    return checked(malloc(size), size, file, line);
}

void *pdn_checked_calloc(size_t count, size_t size, const char *file, int line)
{
    size_t total;
    if(__builtin_mul_overflow(count, size, &total)) total = SIZE_MAX;
    charge(total, file, line);
    return checked(total == SIZE_MAX ? NULL : calloc(count, size), total, file, line);
}

void *pdn_checked_realloc(void *old, size_t size, const char *file, int line)
{
    charge(size, file, line);
    return checked(realloc(old, size), size, file, line);
}

char *pdn_checked_strdup(const char *text, const char *file, int line)
{
    size_t size = strlen(text) + 1;
    charge(size, file, line);
    return checked(strdup(text), size, file, line);
}
