"""Build time: upstream Darknet's pinned, verified tree (``upstream``), our patch series
on it (``patches``), the cffi builder of the binding (``ffi_builder``) and the digest of
what a build compiles from this tree (``inputs``). setup.py and
``pydarknet patches`` use these; nothing here needs the compiled extension."""
