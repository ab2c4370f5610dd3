"""The CPUs this process may use, and how pydarknet's OpenMP threads wait: the thread
policy for shared machines (containers, CPU quotas, several workers per host).

- **How many threads**: the CPUs this process may run on (its affinity mask, as
  ``taskset``, ``docker --cpuset-cpus`` and Ray set it) capped by its cgroup CPU quota
  (``docker --cpus``, Kubernetes CPU limits), rounded up; never the host's core count.
  ``set_num_threads``, ``PYDARKNET_NUM_THREADS`` and ``OMP_NUM_THREADS`` rule over it.
- **How they wait**: GNU OpenMP keeps a parallel region's workers spinning for
  about 300,000 pause instructions (several milliseconds) before they sleep. On a
  quiet machine that makes the next region start at once; beside other busy processes
  a worker spins away the time slice its descheduled partner needs (measured: twice
  the time of one thread; ``tools/bench_shared_cpu.py``). Unless the user chose
  (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set), pydarknet bounds the spin to
  ``SPIN_COUNT`` before the OpenMP runtime starts. The runtime reads these once, when
  it is loaded: if another library loaded it first, its policy stays (said by
  ``pydarknet.thread_policy()``).

This module does not load the extension: ``openmp_environment`` is entered around its import.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

#: Spins an idle OpenMP worker makes before it sleeps (GNU OpenMP's GOMP_SPINCOUNT),
#: a sixth of its default: about 1.5 ms at the 30 ns a pause takes on current x86 cores.
#: Chosen with tools/bench_shared_cpu.py (its figures: docs/python-api.md, "Threads, processes and
#: shared machines").
SPIN_COUNT = 50_000
#: The variables by which a user chooses the wait policy themselves.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

NOT_LOADED = "not loaded yet"
_wait_policy = NOT_LOADED  # what openmp_environment() found or did


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _cgroup_quota(text: Optional[str]) -> Optional[float]:
    """CPUs a cgroup allows: v2 ``cpu.max`` ("max 100000" or "150000 100000"), or v1's
    quota and period joined by a space; None without a limit."""
    parts = (text or "").split()
    if len(parts) != 2 or parts[0] in ("max", "-1"):
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _v1_quota(folder: Path) -> Optional[str]:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    return None if quota is None or period is None else f"{quota.strip()} {period.strip()}"


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
                     ) -> Optional[float]:
    """The CPUs this process's cgroups allow it (the smallest quota on the way from its
    cgroup up to the root), or None without a quota. Inside a container the cgroup
    named in ``membership`` may not be visible under ``root``: then the quotas that are
    (the container's own, at the root) count."""
    limits = []
    for line in (_read(membership) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, group = parts
        if controllers == "":  # cgroup v2
            mount, read = root, lambda folder: _read(folder / "cpu.max")
        elif "cpu" in controllers.split(","):
            mount = next((root / name for name in (controllers, "cpu", "cpu,cpuacct") if (root / name).is_dir()), None)
            read = _v1_quota
            if mount is None:
                continue
        else:
            continue
        folder = mount / group.strip().lstrip("/")
        while True:
            quota = _cgroup_quota(read(folder)) if folder.is_dir() else None
            if quota is not None:
                limits.append(quota)
            if folder == mount or mount not in folder.parents:
                break
            folder = folder.parent
    return min(limits) if limits else None


def available_cpus() -> Tuple[int, str]:
    """The threads a forward pass should use by default, and why: the CPUs in this
    process's affinity mask, capped by its cgroup quota (rounded up)."""
    cpus = _affinity()
    quota = cgroup_cpu_limit()
    if quota is not None and math.ceil(quota) < cpus:
        return max(1, math.ceil(quota)), f"cgroup CPU quota {quota:g}"
    return cpus, "CPU affinity"


def openmp_loaded() -> bool:
    """Whether the GNU OpenMP library the extension links (libgomp.so.1) is already in
    this process, so its settings are fixed. (Wheels such as torch's carry a renamed
    copy of their own, libgomp-HASH.so.1: another library, which does not count.)"""
    maps = _read(Path("/proc/self/maps"))
    return maps is not None and "/libgomp.so" in maps


@contextlib.contextmanager
def openmp_environment():
    """Around the extension's first import (which loads the OpenMP runtime): bound the
    workers' spinning unless the user set a wait policy or the runtime is already
    loaded. The variable is removed afterwards, so that processes this one starts keep
    their own defaults."""
    global _wait_policy
    if _wait_policy != NOT_LOADED:  # loaded already: the runtime has read its settings
        yield
        return
    chosen = [f"{name}={os.environ[name]}" for name in WAIT_VARIABLES if name in os.environ]
    if chosen:
        _wait_policy = "yours: " + ", ".join(chosen)
        yield
        return
    if openmp_loaded():
        _wait_policy = "the OpenMP runtime's own (it was loaded before pydarknet)"
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]
    _wait_policy = f"bounded spinning: {SPIN_COUNT} spins, then sleep (GOMP_SPINCOUNT, set by pydarknet)"


def wait_policy() -> str:
    return _wait_policy


def set_default_threads(set_threads: Callable[[int], None], environ: Dict[str, str] = os.environ) -> str:
    """Set the thread count a forward pass uses by default (through ``set_threads``, the
    extension's setter), as the module docstring says; returns its source."""
    from .limits import MAX_THREADS, positive_int

    threads = environ.get("PYDARKNET_NUM_THREADS", "").strip()
    if threads:
        if not threads.isdigit():
            raise ValueError(f"PYDARKNET_NUM_THREADS={threads!r}: give a number of threads, 1 to {MAX_THREADS}")
        set_threads(positive_int(int(threads), "PYDARKNET_NUM_THREADS", MAX_THREADS))
        return "PYDARKNET_NUM_THREADS"
    if environ.get("OMP_NUM_THREADS", "").strip():
        return "OMP_NUM_THREADS"  # the OpenMP runtime's own setting stands
    cpus, source = available_cpus()
    set_threads(min(cpus, MAX_THREADS))
    return source
