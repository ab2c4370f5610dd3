/* Shadows <assert.h> for the upstream sources (this folder comes first on their
 * include path). Upstream asserts on conditions that bad input can reach; in a
 * Python process a failed check must raise, not abort, so assert() reports through
 * darknet_fail(). It stays on under -DNDEBUG, which Python's own CFLAGS set. */
#include "darknet.h"

#undef assert
#define assert(e) ((e) ? (void)0 : darknet_fail(DARKNET_ERR_INTERNAL, \
    "internal check failed: %s (%s:%d)", #e, __FILE__, __LINE__))
