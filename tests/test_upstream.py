"""Upstream source resolution and verification."""

import io
import tarfile

import pytest

from pydarknet.source import upstream


def test_manifest_covers_every_compiled_source(pristine):
    manifest = upstream.load_manifest()
    compiled = {p for p in pristine if p.startswith("src/") and p.endswith((".c", ".h"))}
    assert compiled and compiled <= set(manifest)
    assert "include/darknet.h" in manifest and "cfg/yolov3-tiny.cfg" in manifest


def test_verify_names_changed_and_missing_files(pristine):
    files = dict(pristine)
    files["src/gemm.c"] += b"\n"
    del files["src/parser.c"]
    with pytest.raises(upstream.UpstreamError) as info:
        upstream.verify(files)
    assert "sha256 mismatch: src/gemm.c" in str(info.value)
    assert "missing: src/parser.c" in str(info.value)


def _tarball(path, members):
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                archive.addfile(info)
            else:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path


def test_tarball_reader_skips_unsafe_members(tmp_path):
    path = _tarball(tmp_path / "t.tar.gz", {
        "darknet/src/ok.c": b"ok",
        "darknet/../src/evil.c": b"evil",
        "/abs/src/abs.c": b"abs",
        "darknet/src/link.c": None,
    })
    assert upstream.read_tarball(path) == {"src/ok.c": b"ok"}


def test_deb_src_entries_are_derived_from_both_source_formats(tmp_path):
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    (etc / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb-src\nURIs: http://other.invalid/debian\nSuites: bookworm\nComponents: main\n")
    (etc / "sources.list").write_text("# comment\ndeb [arch=amd64] http://mirror.invalid/x stable main\n")
    deb822, one_line = upstream.apt_source_lists(etc)
    assert deb822.count("Types: deb-src") == 1 and "mirror.invalid/debian" in deb822
    assert "other.invalid" not in deb822
    assert one_line.strip() == "deb-src [arch=amd64] http://mirror.invalid/x stable main"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    monkeypatch.delenv("PYDARKNET_DARKNET_SRC", raising=False)
    monkeypatch.setenv("PYDARKNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PYDARKNET_OFFLINE", "1")
    return tmp_path


def test_no_channel_gives_an_error_listing_every_channel_and_the_offline_recipe(isolated):
    with pytest.raises(upstream.UpstreamError) as info:
        upstream.resolve(isolated / "work", lambda message: None)
    text = str(info.value)
    for channel in ("user:", "cache:", "github:", "apt:"):
        assert channel in text
    assert "PYDARKNET_DARKNET_SRC=" in text and "--config-settings darknet-src=" in text


def test_user_source_with_a_changed_file_is_an_error_naming_it(isolated, monkeypatch, pristine):
    files = dict(pristine)
    files["src/blas.c"] = b"/* not upstream */"
    upstream.write_tree(files, isolated / "src-tree")
    monkeypatch.setenv("PYDARKNET_DARKNET_SRC", str(isolated / "src-tree"))
    with pytest.raises(upstream.UpstreamError, match="sha256 mismatch: src/blas.c"):
        upstream.resolve(isolated / "work", lambda message: None)


def test_user_tarball_is_used_then_cached_for_offline_rebuilds(isolated, monkeypatch, pristine):
    tarball = _tarball(isolated / "darknet.tar.gz", {f"darknet-x/{p}": d for p, d in pristine.items()})
    monkeypatch.setenv("PYDARKNET_DARKNET_SRC", str(tarball))
    files, channel = upstream.resolve(isolated / "work", lambda message: None)
    assert channel.startswith("user:") and files == pristine
    monkeypatch.delenv("PYDARKNET_DARKNET_SRC")
    files, channel = upstream.resolve(isolated / "work", lambda message: None)
    assert channel.startswith("cache:") and files == pristine
