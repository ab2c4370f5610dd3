"""The cffi builder of the extension (API mode): the C API of csrc/pydarknet.h, plus the
constants of upstream's darknet.h that the binding reads, their values taken from the
C headers by the compiler rather than copied by hand."""

from pathlib import Path

# darknet.h's enums that Python reads by name (binding.py); "..." lets the compiler
# supply the values.
DARKNET_CONSTANTS = """
typedef enum { DARKNET_OK, DARKNET_ERR_FILE, DARKNET_ERR_CFG, DARKNET_ERR_WEIGHTS, DARKNET_ERR_IMAGE,
               DARKNET_ERR_MEMORY, DARKNET_ERR_INTERNAL, DARKNET_ERR_DEVICE, ... } darknet_error_code;
typedef enum { BN_DENOMINATOR_CPU, BN_DENOMINATOR_GPU, ... } bn_denominator;
"""


def write_source(header: Path, target: Path) -> Path:
    """The extension's C source from our API header, written to target (cffi leaves a
    file whose content is unchanged untouched, so builds stay incremental)."""
    import cffi

    ffi = cffi.FFI()
    # pydarknet.h marks the callbacks into Python with PDN_CALLBACK (see there).
    ffi.cdef(header.read_text().replace("PDN_CALLBACK", 'extern "Python+C"') + DARKNET_CONSTANTS)
    ffi.set_source("pydarknet._darknet",
                   '#define PDN_CALLBACK extern\n#include "darknet.h"\n#include "pydarknet.h"')
    ffi.emit_c_code(str(target))
    return target
