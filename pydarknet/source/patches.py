"""Our patch series on upstream Darknet, applied strictly.

``darknet_patches/series`` names ``NNNN-name.patch`` files in order. Each patch starts
with a DEP-3 header and is a unified diff with ``a/`` and ``b/`` prefixes. Application
is exact: every hunk must match at the line its header names (no offset, no fuzz), so
a patch that no longer fits upstream fails loudly instead of landing somewhere else.

Trees are handled in memory (``{relative path: bytes}``); only the finished tree is
written, atomically, with a stamp saying what it was made from.

Command line: ``pydarknet patches {list,check,apply,status,lint}`` (cli/patches.py).
"""

from __future__ import annotations

import datetime
import difflib
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Dict, List, Optional, Sequence, Tuple

from .. import atomic
from . import upstream

Files = Dict[str, bytes]
DEP3_REQUIRED = ("Description", "Author", "Forwarded", "Last-Update")
PATCH_NAME = re.compile(r"\d{4}-[a-z0-9][a-z0-9-]*\.patch")
STAMP_NAME = ".pydarknet-stamp.json"
HEADER_WIDTH = 80
NO_NEWLINE = b"\\ No newline at end of file"


class PatchError(Exception):
    """A patch is malformed, unsafe, or does not apply exactly."""


@dataclass
class Hunk:
    old_start: int
    old_len: int
    new_start: int
    new_len: int
    lines: List[Tuple[str, bytes]] = field(default_factory=list)  # (' ' | '-' | '+', line)

    def old_lines(self) -> List[bytes]:
        return [text for tag, text in self.lines if tag != "+"]

    def new_lines(self) -> List[bytes]:
        return [text for tag, text in self.lines if tag != "-"]


@dataclass
class FileDiff:
    old_path: Optional[str]  # None: the patch creates the file
    new_path: Optional[str]  # None: the patch deletes the file
    hunks: List[Hunk] = field(default_factory=list)

    @property
    def path(self) -> str:
        return self.new_path or self.old_path


@dataclass
class Patch:
    name: str
    data: bytes
    header: Dict[str, str]
    files: List[FileDiff]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def summary(self) -> str:
        return self.header.get("Description", "").splitlines()[0] if self.header.get("Description") else ""


def split_lines(data: bytes) -> List[bytes]:
    """Lines with their b'\\n' kept; a last line without newline stays as it is."""
    return re.findall(rb"[^\n]*\n|[^\n]+$", data)


def _tree_path(raw: bytes, name: str) -> Optional[str]:
    """'a/src/x.c' -> 'src/x.c'; '/dev/null' -> None; refuses paths leaving the tree."""
    text = raw.decode("utf-8").split("\t")[0].strip()
    if text == "/dev/null":
        return None
    pure = PurePosixPath(text)
    if pure.is_absolute() or len(pure.parts) < 2 or pure.parts[0] not in ("a", "b"):
        raise PatchError(f"{name}: path {text!r} is not of the form a/PATH or b/PATH")
    rel = PurePosixPath(*pure.parts[1:])
    if ".." in rel.parts:
        raise PatchError(f"{name}: path {text!r} leaves the source tree")
    return rel.as_posix()


def parse_header(text: str) -> Dict[str, str]:
    """DEP-3 fields ('Key: value', continuation lines indented)."""
    header: Dict[str, str] = {}
    key = None
    for line in text.splitlines():
        match = re.match(r"([A-Za-z][A-Za-z0-9-]*):\s?(.*)", line)
        if match:
            key = match.group(1)
            header[key] = match.group(2).strip()
        elif key and line.startswith((" ", "\t")) and line.strip():
            header[key] += "\n" + line.strip()
        elif not line.strip():
            key = None
    return header


def parse_patch(name: str, data: bytes) -> Patch:
    lines = split_lines(data)
    first = next((i for i, l in enumerate(lines) if l.startswith(b"--- ")), None)
    if first is None:
        raise PatchError(f"{name}: no '--- a/...' file header found")
    preamble = b"".join(lines[:first]).decode("utf-8", "replace")
    if re.search(r"^(new|deleted) file mode 120000|^(old|new) mode 120000", preamble, re.M):
        raise PatchError(f"{name}: symbolic links are refused")
    header = parse_header(preamble)
    files: List[FileDiff] = []
    i = first
    while i < len(lines):
        line = lines[i]
        if re.match(rb"(new|deleted) file mode 120000|(old|new) mode 120000", line):
            raise PatchError(f"{name}: symbolic links are refused")
        if not line.startswith(b"--- "):
            i += 1
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith(b"+++ "):
            raise PatchError(f"{name}: '---' at line {i + 1} without '+++' after it")
        diff = FileDiff(_tree_path(line[4:], name), _tree_path(lines[i + 1][4:], name))
        if diff.old_path is None and diff.new_path is None:
            raise PatchError(f"{name}: file header at line {i + 1} names no file")
        i += 2
        while i < len(lines) and lines[i].startswith(b"@@"):
            hunk, i = _parse_hunk(name, lines, i)
            diff.hunks.append(hunk)
        if not diff.hunks:
            raise PatchError(f"{name}: no hunks for {diff.path}")
        files.append(diff)
    return Patch(name, data, header, files)


def _parse_hunk(name: str, lines: List[bytes], i: int) -> Tuple[Hunk, int]:
    match = re.match(rb"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", lines[i])
    if not match:
        raise PatchError(f"{name}: bad hunk header at line {i + 1}: {lines[i]!r}")
    old_start, old_len, new_start, new_len = (
        int(g) if g is not None else 1 for g in match.groups()
    )
    hunk = Hunk(old_start, old_len, new_start, new_len)
    i += 1
    old_seen = new_seen = 0
    while i < len(lines) and (old_seen < old_len or new_seen < new_len):
        line = lines[i]
        tag = line[:1].decode("latin-1")
        if tag not in (" ", "-", "+"):
            break
        hunk.lines.append((tag, line[1:]))
        old_seen += tag != "+"
        new_seen += tag != "-"
        i += 1
        if i < len(lines) and lines[i].rstrip(b"\n") == NO_NEWLINE:
            hunk.lines[-1] = (tag, hunk.lines[-1][1].rstrip(b"\n"))
            i += 1
    if (old_seen, new_seen) != (old_len, new_len):
        raise PatchError(
            f"{name}: hunk at line {i + 1} has {old_seen}/{new_seen} old/new lines, "
            f"header says {old_len}/{new_len}"
        )
    return hunk, i


def _nearest_match(content: List[bytes], wanted: List[bytes], start: int) -> Optional[int]:
    """Where the hunk's old lines do occur, nearest to start (for the error message)."""
    hits = [
        p for p in range(len(content) - len(wanted) + 1)
        if content[p:p + len(wanted)] == wanted
    ]
    return min(hits, key=lambda p: abs(p - start)) if hits else None


def apply_patch(files: Files, patch: Patch, allow_offset: bool = False) -> Files:
    """A new tree with patch applied exactly; PatchError names the patch, file and hunk.

    allow_offset is for refreshing the series only (``patches refresh``): a hunk
    whose context moved is applied where it now is, so the patch can be re-diffed.
    """
    result = dict(files)
    for diff in patch.files:
        where = f"{patch.name}: {diff.path}"
        if diff.old_path is None:
            if diff.new_path in result:
                raise PatchError(f"{where}: the patch creates this file but it already exists")
            content: List[bytes] = []
        elif diff.old_path not in result:
            raise PatchError(f"{where}: file not found in the tree")
        else:
            content = split_lines(result[diff.old_path])
        out: List[bytes] = []
        pos = 0
        for number, hunk in enumerate(diff.hunks, 1):
            old = hunk.old_lines()
            start = hunk.old_start - 1 if hunk.old_len else hunk.old_start
            if start < pos or content[start:start + len(old)] != old:
                found = _nearest_match(content, old, start)
                if allow_offset and found is not None and found >= pos:
                    start = found
            if start < pos or content[start:start + len(old)] != old:
                detail = (
                    f"its context is at line {found + 1} (offset {found - start:+d}); "
                    "strict application refuses offsets" if found is not None
                    else "its context does not match the file (fuzz is refused)"
                )
                raise PatchError(f"{where}: hunk #{number} (line {hunk.old_start}) fails: {detail}")
            out += content[pos:start] + hunk.new_lines()
            pos = start + len(old)
        out += content[pos:]
        if diff.old_path is not None:
            del result[diff.old_path]
        if diff.new_path is not None:
            result[diff.new_path] = b"".join(out)
    return result


# --- the series -----------------------------------------------------------------------


def default_series_dir() -> Path:
    """./darknet_patches when run in a source checkout, else the copy installed with us."""
    here = Path.cwd() / "darknet_patches"
    return here if (here / "series").is_file() else Path(__file__).resolve().parent.parent / "darknet_patches"


def series_names(series_dir: Path) -> List[str]:
    path = series_dir / "series"
    if not path.is_file():
        raise PatchError(f"{path}: no series file")
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def load_series(series_dir: Path) -> List[Patch]:
    patches = []
    for name in series_names(series_dir):
        path = series_dir / name
        if not path.is_file():
            raise PatchError(f"{series_dir / 'series'} names {name}, which does not exist")
        patches.append(parse_patch(name, path.read_bytes()))
    return patches


def apply_series(files: Files, patches: Sequence[Patch]) -> Files:
    for patch in patches:
        files = apply_patch(files, patch)
    return files


def stamp_for(patches: Sequence[Patch], channel: str) -> Dict[str, object]:
    return {
        "upstream_commit": upstream.COMMIT,
        "upstream_manifest_sha256": upstream.manifest_hash(),
        "upstream_channel": channel,
        "patches": [[p.name, p.sha256] for p in patches],
    }


def read_stamp(tree: Path) -> Optional[Dict[str, object]]:
    try:
        return json.loads((tree / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def same_inputs(a: Optional[Dict[str, object]], b: Dict[str, object]) -> bool:
    keys = ("upstream_manifest_sha256", "patches")
    return a is not None and all(a.get(k) == b[k] for k in keys)


def prepare_tree(dest: Path, series_dir: Path, work: Path, log: upstream.Log = upstream.log_stderr) -> Dict[str, object]:
    """Make dest the pristine upstream tree with the series applied; return its stamp.

    A tree whose stamp names the same manifest and patches is reused as it is.
    """
    patches = load_series(series_dir)
    existing = read_stamp(dest)
    if same_inputs(existing, stamp_for(patches, "")):
        log(f"pydarknet: reusing patched tree {dest}")
        return existing
    pristine, channel = upstream.resolve(work, log)
    patched = apply_series(pristine, patches)
    stamp = stamp_for(patches, channel)
    patched[STAMP_NAME] = (json.dumps(stamp, indent=2) + "\n").encode()
    upstream.write_tree(patched, dest)
    log(f"pydarknet: applied {len(patches)} patches into {dest}")
    return stamp


# --- writing patches (``pydarknet patches refresh``) ------------------------------------

# Lines of context around each change. Application is exact at the line a hunk names, on
# a verified pinned tree, so context only confirms the place: one line does that, and
# keeps the series about our changes rather than upstream's neighbouring lines.
CONTEXT = 1


def _range(start: int, length: int) -> str:
    return f"{start + 1 if length else start},{length}"


def _diff_lines(prefix: bytes, lines: List[bytes]) -> List[bytes]:
    out = []
    for line in lines:
        out.append(prefix + line)
        if not line.endswith(b"\n"):
            out[-1] += b"\n" + NO_NEWLINE + b"\n"
    return out


def unified_diff(path: str, old: Optional[bytes], new: Optional[bytes], context: int = CONTEXT) -> bytes:
    """A unified diff of one file in the a/ b/ form this module applies."""
    a, b = split_lines(old or b""), split_lines(new or b"")
    out = [
        b"--- " + (b"a/" + path.encode() if old is not None else b"/dev/null") + b"\n",
        b"+++ " + (b"b/" + path.encode() if new is not None else b"/dev/null") + b"\n",
    ]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n".encode())
        for tag, a1, a2, b1, b2 in group:
            if tag == "equal":
                out += _diff_lines(b" ", a[a1:a2])
                continue
            out += _diff_lines(b"-", a[a1:a2])
            out += _diff_lines(b"+", b[b1:b2])
    return b"".join(out)


def header_text(data: bytes) -> str:
    """The DEP-3 header of a patch file as written (everything before its '---' line)."""
    end = data.find(b"\n---\n")
    return data[:end].decode("utf-8") if end >= 0 else ""


def make_patch(header: str, before: Files, after: Files) -> bytes:
    """DEP-3 header text followed by the diffs of every file that differs."""
    changed = [path for path in sorted(set(before) | set(after))
               if path != STAMP_NAME and before.get(path) != after.get(path)]
    for path in changed:
        if any(b"\0" in side for side in (before.get(path), after.get(path)) if side is not None):
            raise PatchError(f"{path} is binary and differs; patches carry text only "
                             "(is the edited tree missing upstream files?)")
    body = b"".join(unified_diff(path, before.get(path), after.get(path)) for path in changed)
    return header.rstrip("\n").encode() + b"\n---\n" + body


def lint(series_dir: Path) -> List[str]:
    """Problems with the series: names, files, DEP-3 headers, parse errors."""
    problems = []
    try:
        names = series_names(series_dir)
    except PatchError as exc:
        return [str(exc)]
    on_disk = sorted(p.name for p in series_dir.glob("*.patch"))
    for name in on_disk:
        if name not in names:
            problems.append(f"{name}: in {series_dir} but not listed in series")
    if len(set(names)) != len(names):
        problems.append("series lists a patch twice")
    if names != sorted(names):
        problems.append("series is not in NNNN order")
    for name in names:
        if not PATCH_NAME.fullmatch(name):
            problems.append(f"{name}: name is not NNNN-lowercase-words.patch")
        path = series_dir / name
        if not path.is_file():
            problems.append(f"{name}: listed in series but missing")
            continue
        try:
            patch = parse_patch(name, path.read_bytes())
        except (PatchError, UnicodeDecodeError) as exc:
            problems.append(str(exc))
            continue
        for key in DEP3_REQUIRED:
            if not patch.header.get(key):
                problems.append(f"{name}: DEP-3 header lacks '{key}:'")
        for number, line in enumerate(header_text(patch.data).splitlines(), 1):
            if len(line) > HEADER_WIDTH:
                problems.append(f"{name}: header line {number} is over {HEADER_WIDTH} columns")
    if [name[:4] for name in names] != [f"{i:04d}" for i in range(1, len(names) + 1)]:
        problems.append("series numbers are not 0001, 0002, ... without gaps")
    return problems


# --- command line ---------------------------------------------------------------------


def pristine_files(source: Optional[str], work: Path) -> Files:
    if source is None:
        return upstream.resolve(work, lambda msg: None)[0]
    files = upstream.read_source(Path(source))
    try:
        upstream.verify(files)
    except upstream.UpstreamError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    return files


def rewrites(files: Files, series: Sequence[Patch]) -> List[str]:
    """Lines a patch removes that an earlier patch added: each patch should change
    upstream's own lines only, so that no patch needs another to be read."""
    owners = {path: [None] * len(split_lines(data)) for path, data in files.items()}
    found = []
    for patch in series:
        for diff in patch.files:
            line_owners = owners.get(diff.old_path, []) if diff.old_path else []
            shift = 0
            for hunk in diff.hunks:
                pos = (hunk.old_start - 1 if hunk.old_len else hunk.old_start) + shift
                lines = iter(line_owners[pos:pos + hunk.old_len])
                new_owners = []
                for tag, text in hunk.lines:
                    if tag == "+":
                        new_owners.append(patch.name)
                        continue
                    owner = next(lines)
                    if tag == "-" and owner is not None:
                        found.append(f"{patch.name}: {diff.path} removes a line of {owner}: "
                                     f"{text.decode('utf-8', 'replace').strip()[:60]}")
                    if tag == " ":
                        new_owners.append(owner)
                line_owners[pos:pos + hunk.old_len] = new_owners
                shift += hunk.new_len - hunk.old_len
            if diff.old_path:
                owners.pop(diff.old_path, None)
            if diff.new_path:
                owners[diff.new_path] = line_owners
    return found


def refresh(name: str, tree: Files, pristine: Files, series_dir: Path, description: Optional[str] = None,
            today: Optional[str] = None) -> List[str]:
    """Rewrite patch NAME (or append a new one) as the difference between pristine plus
    the patches before it and TREE; later patches whose context only moved are re-diffed
    to their new line numbers. Returns the files written."""
    names = series_names(series_dir)
    series = load_series(series_dir)
    new = name not in names
    if new and not PATCH_NAME.fullmatch(name):
        raise PatchError(f"{name}: a new patch is named NNNN-lowercase-words.patch")
    if new and not description:
        raise PatchError(f"{name} is a new patch: give its description")
    if new and name[:4] != f"{len(names) + 1:04d}":
        raise PatchError(f"{name}: a new patch takes the next number, {len(names) + 1:04d}")
    before_patches = series if new else series[:names.index(name)]
    before = apply_series(pristine, before_patches)
    today = today or datetime.date.today().isoformat()
    if new:
        header = (f"Description: {description}\nAuthor: pydarknet developers\n"
                  f"Forwarded: not-needed (upstream is no longer maintained)\nLast-Update: {today}\n")
    else:
        header = "\n".join(f"Last-Update: {today}" if line.startswith("Last-Update:") else line
                           for line in header_text((series_dir / name).read_bytes()).splitlines())
    written = {name: make_patch(header, before, tree)}
    parse_patch(name, written[name])  # what we write must read back
    current = tree
    for later in series[len(before_patches) + (0 if new else 1):]:
        moved = apply_patch(current, later, allow_offset=True)
        rebased = make_patch(header_text(later.data), current, moved)
        if rebased != later.data:
            written[later.name] = rebased
        current = moved
    if new:
        written["series"] = "".join(n + "\n" for n in names + [name]).encode()
    with atomic.replacing(*(series_dir / file_name for file_name in written)) as temps:
        for temp, data in zip(temps, written.values()):
            temp.write_bytes(data)
    return list(written)
