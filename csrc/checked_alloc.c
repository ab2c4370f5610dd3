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

/* The allocations of the open scope (see checked_alloc.h), in the C library's memory. */
static _Thread_local struct {
    void **items;
    size_t count, capacity;
    int open;
} scope;

static void *remember(void *memory)
{
    if(!scope.open || !memory) return memory;
    if(scope.count == scope.capacity){
        size_t capacity = scope.capacity ? 2*scope.capacity : 256;
        void **items = realloc(scope.items, capacity*sizeof(*items));
        if(!items){  /* cannot record any more: stop, leaking at worst, never freeing twice */
            scope.open = 0;
            scope.count = 0;
            return memory;
        }
        scope.items = items;
        scope.capacity = capacity;
    }
    scope.items[scope.count++] = memory;
    return memory;
}

/* 1 if memory was recorded (it no longer is). Recent allocations are freed first. */
static int forget(void *memory)
{
    size_t i;
    if(!scope.open || !memory) return 0;
    for(i = scope.count; i-- > 0;){
        if(scope.items[i] == memory){
            scope.items[i] = scope.items[--scope.count];
            return 1;
        }
    }
    return 0;
}

void pdn_alloc_scope_begin(void)
{
    scope.count = 0;
    scope.open = 1;
}

void pdn_alloc_scope_end(void)
{
    scope.open = 0;
    scope.count = 0;
}

void pdn_alloc_scope_sweep(void)
{
    size_t i;
    if(scope.open){
        for(i = 0; i < scope.count; ++i) free(scope.items[i]);
    }
    pdn_alloc_scope_end();
}

void *pdn_checked_malloc(size_t size, const char *file, int line)
{
    charge(size, file, line);
    return remember(checked(malloc(size), size, file, line));
}

void *pdn_checked_calloc(size_t count, size_t size, const char *file, int line)
{
    size_t total;
    if(__builtin_mul_overflow(count, size, &total)) total = SIZE_MAX;
    charge(total, file, line);
    return remember(checked(total == SIZE_MAX ? NULL : calloc(count, size), total, file, line));
}

void *pdn_checked_realloc(void *old, size_t size, const char *file, int line)
{
    int recorded;
    charge(size, file, line);
    recorded = forget(old);
    void *memory = checked(realloc(old, size), size, file, line);
    /* a block owned outside the scope stays outside it when it moves */
    return recorded || !old ? remember(memory) : memory;
}

char *pdn_checked_strdup(const char *text, const char *file, int line)
{
    size_t size = strlen(text) + 1;
    charge(size, file, line);
    return remember(checked(strdup(text), size, file, line));
}

void pdn_checked_free(void *memory)
{
    forget(memory);
    free(memory);
}
