"""Build time: upstream Darknet's pinned, verified tree (``upstream``), our patch series
on it (``patches``) and the cffi builder of the binding (``ffi_builder``). setup.py and
``pydarknet patches`` use these; nothing here needs the compiled extension."""
