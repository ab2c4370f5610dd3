"""What a build compiles from this source tree besides upstream's verified files: our C
(``csrc/``) and our patch series (``darknet_patches/``). Their digest is recorded in the
extension at build time, so that a checkout whose sources moved on since its last build
is told to rebuild instead of running the old extension with the new Python."""

from __future__ import annotations

import hashlib
from pathlib import Path

FOLDERS = ("csrc", "darknet_patches")


def digest(root: Path) -> str:
    """sha256 over every file of FOLDERS below ``root``: relative path and content."""
    total = hashlib.sha256()
    for folder in FOLDERS:
        for path in sorted(p for p in (root / folder).rglob("*") if p.is_file()):
            total.update(path.relative_to(root).as_posix().encode() + b"\0")
            total.update(hashlib.sha256(path.read_bytes()).digest())
    return total.hexdigest()


def is_checkout(root: Path) -> bool:
    """A source tree (rather than an installed package): it holds the build and our C."""
    return (root / "setup.py").is_file() and all((root / folder).is_dir() for folder in FOLDERS)
