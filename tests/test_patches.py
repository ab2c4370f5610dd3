"""The patch series and the strict patch manager."""

import json
import shutil
import subprocess
import sys

import pytest

from pydarknet.source import patches, upstream

from conftest import SERIES


def run_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pydarknet", "patches", "--series", str(SERIES), *args],
                          capture_output=True, text=True, cwd=cwd)


def test_series_lints_clean():
    assert patches.lint(SERIES) == []


def test_every_patch_has_a_dep3_header():
    for patch in patches.load_series(SERIES):
        for key in patches.DEP3_REQUIRED:
            assert patch.header.get(key), f"{patch.name} lacks {key}"


def test_series_applies_exactly_to_pristine(pristine):
    patched = patches.apply_series(pristine, patches.load_series(SERIES))
    assert "src/flatten_layer.c" in patched  # a layer the series adds
    assert "src/darknet_error.c" not in patched  # our own C lives in csrc/, not in hunks
    assert b"parse_network_cfg_custom" in patched["src/parser.c"]
    assert patched["cfg/yolov3-tiny.cfg"] == pristine["cfg/yolov3-tiny.cfg"]


@pytest.mark.network  # upstream's pristine tree, fetched once
def test_check_cli_passes(tmp_path):
    done = run_cli("check", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "patches apply exactly" in done.stdout


def test_modified_upstream_file_fails_on_the_right_patch_and_hunk(pristine, tmp_path):
    # Change a context line of hunk #2 of 0002's diff of src/parser.c, in a copy of upstream.
    target = next(p for p in patches.load_series(SERIES) if p.name.startswith("0002-"))
    diff = next(d for d in target.files if d.path == "src/parser.c")
    tree = patches.apply_series(pristine, patches.load_series(SERIES)[:1])  # what 0002 applies to
    lines = patches.split_lines(tree["src/parser.c"])
    hunk = diff.hunks[1]
    index = hunk.old_start - 1
    assert lines[index] == hunk.old_lines()[0]
    lines[index] = b"/* changed upstream */ " + lines[index]
    source = dict(pristine)
    source["src/parser.c"] = b"".join(lines)
    # 0001 does not touch parser.c, so the line number is the same in pristine.
    assert pristine["src/parser.c"] != source["src/parser.c"]
    upstream.write_tree(source, tmp_path / "upstream")

    done = run_cli("check", "--source", str(tmp_path / "upstream"), cwd=tmp_path)
    assert done.returncode == 1
    assert "sha256 mismatch: src/parser.c" in done.stderr  # the source is named as not pinned
    assert f"{target.name}: src/parser.c: hunk #2 (line {hunk.old_start}) fails" in done.stderr


def _one_hunk_patch(pristine, shift=0, context_edit=None):
    before = {"src/list.c": pristine["src/list.c"]}
    after = {"src/list.c": pristine["src/list.c"].replace(b"list *make_list()", b"list *make_list(void)")}
    data = patches.make_patch("Description: t\nAuthor: a\nForwarded: no\nLast-Update: 2026-01-01", before, after)
    text = data.decode()
    if shift:
        header = next(l for l in text.splitlines() if l.startswith("@@"))
        old, new = header.split()[1:3]
        start = int(old[1:].split(",")[0])
        text = text.replace(header, header.replace(old, f"-{start + shift},{old.split(',')[1]}")
                            .replace(new, f"+{start + shift},{new.split(',')[1]}"))
    if context_edit:  # the first context line changed
        lines = text.split("\n")
        first = next(i for i, l in enumerate(lines) if l.startswith("@@")) + 1
        lines[first] += " /* fuzz */"
        text = "\n".join(lines)
    return patches.parse_patch("9999-test.patch", text.encode())


def test_exact_patch_applies(pristine):
    result = patches.apply_patch(pristine, _one_hunk_patch(pristine))
    assert b"list *make_list(void)" in result["src/list.c"]


def test_patch_needing_an_offset_is_refused(pristine):
    patch = _one_hunk_patch(pristine, shift=2)
    with pytest.raises(patches.PatchError, match=r"hunk #1 .*offset -2\).*refuses offsets"):
        patches.apply_patch(pristine, patch)


def test_patch_needing_fuzz_is_refused(pristine):
    patch = _one_hunk_patch(pristine, context_edit=True)
    with pytest.raises(patches.PatchError, match=r"hunk #1 .*fuzz is refused"):
        patches.apply_patch(pristine, patch)


@pytest.mark.parametrize("header, message", [
    ("--- a/../etc/passwd\n+++ b/../etc/passwd\n", "leaves the source tree"),
    ("--- /etc/passwd\n+++ /etc/passwd\n", "not of the form"),
    ("diff --git a/x b/x\nnew file mode 120000\n--- /dev/null\n+++ b/x\n", "symbolic links are refused"),
])
def test_unsafe_patches_are_refused(header, message):
    data = f"Description: x\n---\n{header}@@ -0,0 +1,1 @@\n+y\n".encode()
    with pytest.raises(patches.PatchError, match=message):
        patches.parse_patch("0001-x.patch", data)


def test_lint_catches_a_patch_missing_from_series(tmp_path):
    series = tmp_path / "series_dir"
    shutil.copytree(SERIES, series)
    names = patches.series_names(series)
    (series / "series").write_text("".join(n + "\n" for n in names[:-1]))
    assert f"{names[-1]}: in {series} but not listed in series" in patches.lint(series)


def test_lint_catches_a_missing_header_field(tmp_path):
    series = tmp_path / "series_dir"
    shutil.copytree(SERIES, series)
    name = patches.series_names(series)[0]
    text = (series / name).read_text()
    (series / name).write_text("\n".join(l for l in text.split("\n") if not l.startswith("Forwarded:")))
    assert f"{name}: DEP-3 header lacks 'Forwarded:'" in patches.lint(series)


def test_make_patch_round_trips_including_missing_final_newline():
    before = {"a.c": b"one\ntwo\nthree", "gone.c": b"x\n"}
    after = {"a.c": b"one\n2\nthree\nfour", "new.c": b"fresh\n"}
    patch = patches.parse_patch("0001-t.patch", patches.make_patch("Description: t", before, after))
    assert patches.apply_patch(before, patch) == after


@pytest.mark.network  # upstream's pristine tree, fetched once
def test_apply_then_status_clean_then_modified(tmp_path):
    tree = tmp_path / "tree"
    assert run_cli("apply", str(tree), cwd=tmp_path).returncode == 0
    stamp = json.loads((tree / patches.STAMP_NAME).read_text())
    assert [p[0] for p in stamp["patches"]] == patches.series_names(SERIES)
    done = run_cli("status", str(tree), cwd=tmp_path)
    assert done.returncode == 0 and "clean" in done.stdout
    (tree / "src" / "gemm.c").write_text("changed")
    done = run_cli("status", str(tree), cwd=tmp_path)
    assert done.returncode == 1 and "differs: src/gemm.c" in done.stdout


@pytest.mark.network  # upstream's pristine tree, fetched once
def test_prepared_tree_is_reused_only_while_the_stamp_matches(tmp_path):
    tree, work, messages = tmp_path / "tree", tmp_path / "work", []
    first = patches.prepare_tree(tree, SERIES, work, messages.append)
    patches.prepare_tree(tree, SERIES, work, messages.append)
    assert messages[-1].startswith("pydarknet: reusing patched tree")

    changed = tmp_path / "changed_series"
    shutil.copytree(SERIES, changed)
    name = patches.series_names(changed)[-1]
    (changed / name).write_text((changed / name).read_text().replace("Description: ", "Description: Edited. ", 1))
    second = patches.prepare_tree(tree, changed, work, messages.append)
    assert messages[-1].startswith("pydarknet: applied")
    assert second["patches"][-1][1] != first["patches"][-1][1]


def test_make_patch_refuses_binary_files():
    with pytest.raises(patches.PatchError, match="a.png is binary"):
        patches.make_patch("Description: t", {"a.png": b"\x89PNG\0data"}, {})


# -- the series as hooks (issue 28) ------------------------------------------------------


def test_no_patch_removes_a_line_another_added(pristine):
    assert patches.rewrites(pristine, patches.load_series(SERIES)) == []


def test_a_patch_rewriting_an_earlier_one_is_found(pristine):
    first = _one_hunk_patch(pristine)
    fixed = {"src/list.c": patches.apply_patch(pristine, first)["src/list.c"]}
    after = {"src/list.c": fixed["src/list.c"].replace(b"list *make_list(void)", b"list *make_list (void)")}
    second = patches.parse_patch("9999-fixup.patch", patches.make_patch("Description: f", fixed, after))
    found = patches.rewrites(pristine, [first, second])
    assert len(found) == 1 and found[0].startswith("9999-fixup.patch: src/list.c removes a line of 9999-test.patch")


def test_series_adds_no_file_but_flattens(pristine):
    added = {d.path for p in patches.load_series(SERIES) for d in p.files if d.old_path is None}
    assert added == {"src/flatten_layer.c", "src/flatten_layer.h", "src/flatten_layer_kernels.cu"}


def test_series_is_at_most_2500_lines():
    lines = sum(len(p.read_bytes().splitlines()) for p in SERIES.iterdir())
    assert lines <= 2500, lines


def test_lint_catches_long_header_lines_and_number_gaps(tmp_path):
    series = tmp_path / "series_dir"
    shutil.copytree(SERIES, series)
    names = patches.series_names(series)
    text = (series / names[0]).read_text()
    (series / names[0]).write_text(text.replace("Author: pydarknet developers", "Author: " + "x" * 80, 1))
    gap = names[-1].replace(names[-1][:4], f"{len(names) + 1:04d}")
    (series / names[-1]).rename(series / gap)
    (series / "series").write_text("".join(n + "\n" for n in names[:-1] + [gap]))
    problems = patches.lint(series)
    assert any(p.startswith(f"{names[0]}: header line") for p in problems)
    assert "series numbers are not 0001, 0002, ... without gaps" in problems


def test_refresh_rewrites_a_patch_and_rebases_the_next(pristine, tmp_path):
    series = tmp_path / "series_dir"
    shutil.copytree(SERIES, series)
    names = patches.series_names(series)
    target = names[1]
    tree = patches.apply_series(pristine, patches.load_series(series)[:2])
    # one line added at the top of a file the target patches: later patches' lines move
    path = next(d.path for d in patches.load_series(series)[1].files)
    tree[path] = b"/* refreshed */\n" + tree[path]
    written = patches.refresh(target, tree, pristine, series, today="2026-12-31")
    assert target in written
    refreshed = (series / target).read_text()
    assert "Last-Update: 2026-12-31" in refreshed and "+/* refreshed */" in refreshed
    final = patches.apply_series(pristine, patches.load_series(series))  # later ones still apply
    assert final[path].startswith(b"/* refreshed */\n") or path not in final
    assert patches.lint(series) == []
    assert not list(series.glob("*.tmp*")) and not list(series.glob(".*"))
    # the later patches of that file moved down a line: re-diffed; the others are as they were
    moved = {p.name for p in patches.load_series(SERIES)[2:] if any(d.path == path for d in p.files)}
    assert set(written) == {target} | moved
    with pytest.raises(patches.PatchError, match=f"takes the next number, {len(names) + 1:04d}"):
        patches.refresh("0999-late.patch", final, pristine, series, description="x")


def test_docs_list_the_series_in_order():
    text = (SERIES.parent / "docs" / "patches.md").read_text()
    listed = [line.split("|")[1].strip() for line in text.splitlines()
              if line.startswith("| ") and line.split("|")[1].strip()[:4].isdigit()]
    assert listed == [name[:-len(".patch")] for name in patches.series_names(SERIES)]
