"""The pinned upstream Darknet source: where it comes from and how it is verified.

Upstream is identified by a per-file sha256 manifest (``upstream.sha256`` beside
this module), not by a tarball checksum: GitHub regenerates its archives and
Debian recompresses, but the files inside are byte-identical to the pinned commit.

This module is pure standard library because ``setup.py`` loads it before the
extension exists (see ``load_build_module`` there).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Optional, Tuple

from ..cache import cache_dir

COMMIT = "61c9d02ec461e30d55762ec7669d6a1d3c356fb2"
GITHUB_ARCHIVE = f"https://github.com/pjreddie/darknet/archive/{COMMIT}.tar.gz"
DEBIAN_PACKAGE = "darknet"
DEBIAN_UPSTREAM_VERSION = "0.0.0+git20180914.61c9d02e"
# Extra per-channel check only; the manifest is the identity (see module docstring).
DEBIAN_ORIG_SHA256 = "ec536ae11853846aab96183d8ec18730a46cce71f7d935768d235029329f9e93"

MANIFEST_PATH = Path(__file__).with_name("upstream.sha256")
NETWORK_TIMEOUT_S = 15
APT_TIMEOUT_S = 300

# The files a build compiles (src/, include/), may build reference tools from
# (examples/) or installs (cfg/, data/ sample images, name lists, label glyphs).
_MANIFEST_DIRS = ("include/", "src/", "examples/", "cfg/", "data/labels/")
_MANIFEST_DATA_SUFFIXES = (".jpg", ".names", ".list")
_MANIFEST_TOP_FILES = ("LICENSE", "Makefile")

Files = Dict[str, bytes]
Log = Callable[[str], None]


class UpstreamError(Exception):
    """The upstream source could not be obtained or does not match the pin."""


def belongs_in_manifest(path: str) -> bool:
    """Whether an upstream path (relative to the tree's top) is one we pin."""
    if path in _MANIFEST_TOP_FILES or path.startswith(_MANIFEST_DIRS):
        return True
    parts = path.split("/")
    return len(parts) == 2 and parts[0] == "data" and path.endswith(_MANIFEST_DATA_SUFFIXES)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_manifest(path: Path = MANIFEST_PATH) -> Dict[str, str]:
    manifest = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line)
        if not match:
            raise UpstreamError(f"{path}:{number}: not a 'sha256  path' line: {line!r}")
        manifest[match.group(2)] = match.group(1)
    return manifest


def manifest_hash(path: Path = MANIFEST_PATH) -> str:
    return sha256_bytes(path.read_bytes())


def verify(files: Files, manifest: Optional[Dict[str, str]] = None) -> None:
    """Raise UpstreamError naming every file that is missing or differs from the pin."""
    manifest = load_manifest() if manifest is None else manifest
    problems = []
    for path, digest in sorted(manifest.items()):
        if path not in files:
            problems.append(f"missing: {path}")
        elif sha256_bytes(files[path]) != digest:
            problems.append(f"sha256 mismatch: {path}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise UpstreamError(
            f"upstream source does not match the pinned darknet {COMMIT[:8]}:\n  {shown}{more}"
        )


def _safe_relative(name: str) -> Optional[str]:
    """The path below the archive's top folder, or None for anything unsafe."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or len(pure.parts) < 2:
        return None
    return "/".join(pure.parts[1:])


def read_tarball(path: Path) -> Files:
    """Regular files of interest from an upstream tarball, top folder stripped."""
    files = {}
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                rel = _safe_relative(member.name)
                if rel is None or not member.isfile() or not belongs_in_manifest(rel):
                    continue
                files[rel] = archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UpstreamError(f"cannot read tarball {path}: {exc}") from exc
    return files


def read_directory(root: Path) -> Files:
    """Regular files of interest below an upstream tree; symlinks are not followed."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink() or not path.is_file() or not belongs_in_manifest(rel):
            continue
        files[rel] = path.read_bytes()
    return files


def write_tree(files: Files, dest: Path) -> None:
    """Write files below dest, replacing dest atomically (build in a sibling, then rename)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    try:
        for rel, data in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        if dest.exists():
            retired = Path(tempfile.mkdtemp(prefix=dest.name + ".old-", dir=dest.parent))
            os.replace(dest, retired / "tree")
            shutil.rmtree(retired)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def read_source(path: Path) -> Files:
    """A user-named source: an upstream directory or tarball."""
    if path.is_dir():
        return read_directory(path)
    if path.is_file():
        return read_tarball(path)
    raise UpstreamError(f"{path} is neither a directory nor a tarball")


def cached_tree_path() -> Path:
    return cache_dir() / f"darknet-{manifest_hash()[:16]}"


# --- channels -------------------------------------------------------------------------
# Each returns (files, detail) or raises UpstreamError saying why it could not.


def _channel_user(work: Path, log: Log) -> Tuple[Files, str]:
    named = os.environ.get("PYDARKNET_DARKNET_SRC")
    if not named:
        raise UpstreamError("not set (PYDARKNET_DARKNET_SRC or --config-settings darknet-src=)")
    return read_source(Path(named).expanduser()), named


def _channel_cache(work: Path, log: Log) -> Tuple[Files, str]:
    path = cached_tree_path()
    if not path.is_dir():
        raise UpstreamError(f"no cached tree at {path}")
    return read_directory(path), str(path)


def _offline() -> bool:
    return os.environ.get("PYDARKNET_OFFLINE", "0") not in ("", "0")


def _channel_github(work: Path, log: Log) -> Tuple[Files, str]:
    if _offline():
        raise UpstreamError("skipped: PYDARKNET_OFFLINE is set")
    target = work / f"darknet-{COMMIT}.tar.gz"
    try:
        with urllib.request.urlopen(GITHUB_ARCHIVE, timeout=NETWORK_TIMEOUT_S) as response:
            target.write_bytes(response.read())
    except Exception as exc:  # any network failure means: try the next channel
        raise UpstreamError(f"{GITHUB_ARCHIVE}: {exc}") from exc
    return read_tarball(target), GITHUB_ARCHIVE


def _deb_src_stanzas(text: str) -> List[str]:
    """deb822 stanzas whose Types include 'deb', turned into deb-src stanzas."""
    stanzas = []
    for stanza in re.split(r"\n\s*\n", text):
        lines = stanza.strip().splitlines()
        types = [l for l in lines if l.lower().startswith("types:")]
        if types and "deb" in types[0].split(":", 1)[1].split():
            stanzas.append(
                "\n".join("Types: deb-src" if l in types else l for l in lines)
            )
    return stanzas


def _deb_src_lines(text: str) -> List[str]:
    """One-line-format 'deb ...' entries turned into 'deb-src ...' entries."""
    return [
        "deb-src" + line.strip()[3:]
        for line in text.splitlines()
        if re.match(r"\s*deb\s", line)
    ]


def apt_source_lists(etc: Path = Path("/etc/apt")) -> Tuple[str, str]:
    """(deb822 text, one-line text) of deb-src entries derived from the machine's sources."""
    stanzas: List[str] = []
    lines: List[str] = []
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        stanzas += _deb_src_stanzas(path.read_text())
    for path in [etc / "sources.list"] + sorted((etc / "sources.list.d").glob("*.list")):
        if path.is_file():
            lines += _deb_src_lines(path.read_text())
    return "\n\n".join(stanzas) + "\n", "\n".join(lines) + "\n"


def _channel_apt(work: Path, log: Log) -> Tuple[Files, str]:
    if _offline():
        raise UpstreamError("skipped: PYDARKNET_OFFLINE is set")
    apt_get = shutil.which("apt-get")
    if not apt_get:
        raise UpstreamError("apt-get not found")
    root = work / "apt"
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("parts", "lists/partial", "cache/archives/partial", "download"):
        (root / sub).mkdir(parents=True)
    deb822, one_line = apt_source_lists()
    if not deb822.strip() and not one_line.strip():
        raise UpstreamError("no 'deb' entries in /etc/apt to derive deb-src entries from")
    (root / "parts" / "src.sources").write_text(deb822)
    (root / "src.list").write_text(one_line)
    options = [
        f"-oDir::Etc::SourceList={root / 'src.list'}",
        f"-oDir::Etc::SourceParts={root / 'parts'}",
        f"-oDir::State::Lists={root / 'lists'}",
        f"-oDir::Cache={root / 'cache'}",
        "-oDebug::NoLocking=1",
    ]
    if os.geteuid() == 0:  # root's apt would drop to _apt, which cannot write our folders
        options.append("-oAPT::Sandbox::User=root")
    for args, cwd in (
        (["update"], root),
        (["source", "--download-only", DEBIAN_PACKAGE], root / "download"),
    ):
        try:
            done = subprocess.run(
                [apt_get, "-q", *options, *args], cwd=cwd, capture_output=True,
                text=True, timeout=APT_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise UpstreamError(f"apt-get {args[0]} timed out after {APT_TIMEOUT_S} s") from exc
        if done.returncode != 0 and args[0] != "update":  # update fails on any dead mirror
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise UpstreamError(f"apt-get {' '.join(args)}: " + " | ".join(tail))
    tarballs = sorted((root / "download").glob(f"{DEBIAN_PACKAGE}_{DEBIAN_UPSTREAM_VERSION}.orig.tar.*"))
    if not tarballs:
        found = [p.name for p in (root / "download").iterdir()]
        raise UpstreamError(f"apt offers no {DEBIAN_UPSTREAM_VERSION} tarball (got {found})")
    digest = sha256_bytes(tarballs[0].read_bytes())
    if digest != DEBIAN_ORIG_SHA256:
        log(f"note: {tarballs[0].name} sha256 {digest} differs from the known one; "
            "the per-file manifest decides")
    return read_tarball(tarballs[0]), f"apt source {DEBIAN_PACKAGE} ({tarballs[0].name})"


CHANNELS = (
    ("user", _channel_user),
    ("cache", _channel_cache),
    ("github", _channel_github),
    ("apt", _channel_apt),
)

OFFLINE_HELP = (
    "To build offline, download the pinned source on a machine with internet access\n"
    f"  ({GITHUB_ARCHIVE}\n"
    f"   or Debian's {DEBIAN_PACKAGE}_{DEBIAN_UPSTREAM_VERSION}.orig.tar.xz)\n"
    "and point the build at it:\n"
    "  PYDARKNET_DARKNET_SRC=/path/to/tarball-or-directory pip install .\n"
    "  pip install . --config-settings darknet-src=/path/to/tarball-or-directory"
)


def log_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def resolve(work: Path, log: Log = log_stderr) -> Tuple[Files, str]:
    """Obtain verified pristine upstream files: (files, 'channel: detail').

    Tries the channels in order; a channel whose files fail verification counts as failed,
    except the user's own source, where a mismatch is an error (they asked for that source).
    A tree obtained from the network is stored in the per-user cache for offline rebuilds.
    """
    work.mkdir(parents=True, exist_ok=True)
    tried = []
    for name, channel in CHANNELS:
        try:
            files, detail = channel(work, log)
            verify(files)
        except UpstreamError as exc:
            if name == "user" and os.environ.get("PYDARKNET_DARKNET_SRC"):
                raise
            tried.append(f"  {name}: {exc}")
            continue
        log(f"pydarknet: upstream darknet {COMMIT[:8]} verified ({name}: {detail})")
        if name != "cache":
            _store_in_cache(files, log)
        return files, f"{name}: {detail}"
    raise UpstreamError(
        "could not obtain upstream darknet; channels tried:\n" + "\n".join(tried) + "\n" + OFFLINE_HELP
    )


def _store_in_cache(files: Files, log: Log) -> None:
    try:
        write_tree(files, cached_tree_path())
    except OSError as exc:  # a read-only home must not fail the build
        log(f"note: could not cache upstream source in {cached_tree_path()}: {exc}")
