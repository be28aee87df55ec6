"""regkit.data.download by value: exact messages, member names and links, progress, stale partial
files, the archive kinds and what an extraction leaves."""

import hashlib
import importlib
import io
import os
import tarfile
import time
import zipfile
from pathlib import PurePosixPath as P

import pytest

D = importlib.import_module("regkit.data.download")   # the module (regkit.data.download is also its function)


def _src(tmp_path, data=b"x"):
    p = tmp_path / "s.bin"
    p.write_bytes(data)
    return p, hashlib.sha256(data).hexdigest()


NAMES = {
    "/a": "x.tar: member '/a' has an absolute path; refusing to extract",
    "C:/a": "x.tar: member 'C:/a' has an absolute path; refusing to extract",
    "c:a": "x.tar: member 'c:a' has an absolute path; refusing to extract",
    "\\a": "x.tar: member '\\\\a' has an absolute path; refusing to extract",
    "a\\..\\..\\b": "x.tar: member 'a\\\\..\\\\..\\\\b' points outside the target folder; refusing to extract",
    "a/../b": "x.tar: member 'a/../b' points outside the target folder; refusing to extract",
    "./": "x.tar: member './' has an empty name",
    "": "x.tar: member '' has an empty name",
}


@pytest.mark.parametrize("name", list(NAMES))
def test_safe_member_path_refusals(name):
    with pytest.raises(ValueError) as info:
        D.safe_member_path(name, "x.tar")
    assert str(info.value) == NAMES[name]


def test_safe_member_path_normalises():
    assert D.safe_member_path("a/./b//c.txt") == P("a/b/c.txt")
    assert D.safe_member_path("a\\b.txt") == P("a/b.txt")
    assert D.safe_member_path("a") == P("a") and D.safe_member_path("./a/") == P("a")
    with pytest.raises(ValueError, match="^archive: member '/x' has an absolute path"):
        D.safe_member_path("/x")


LINKS = [
    ("a/l", "/etc", "x.tar: link 'a/l' -> '/etc' is absolute; refusing to extract"),
    ("a/l", "C:x", "x.tar: link 'a/l' -> 'C:x' is absolute; refusing to extract"),
    ("a/l", "../../b", "x.tar: link 'a/l' -> '../../b' points outside the target folder"),
    ("l", "a/../../c", "x.tar: link 'l' -> 'a/../../c' points outside the target folder"),
    ("l", "..", "x.tar: link 'l' -> '..' points outside the target folder"),
    ("a/l", "..\\..\\b", "x.tar: link 'a/l' -> '..\\\\..\\\\b' points outside the target folder"),
]


@pytest.mark.parametrize("member, target, message", LINKS)
def test_links_that_leave_the_folder(member, target, message):
    with pytest.raises(ValueError) as info:
        D._link_inside(P(member), target, "x.tar")
    assert str(info.value) == message


@pytest.mark.parametrize("member, target", [("a/l", "../b"), ("a/b/l", "./../../c"), ("l", "a/./b"), ("a/l", "b/../c"),
                                            ("l", ""), ("l", ".")])
def test_links_that_stay_inside(member, target):
    assert D._link_inside(P(member), target, "x.tar") is None


def test_root_entries_and_top_names():
    assert [D._is_root(n) for n in (".", "./", "", ".\\", "./.", "./a", "a", "..")] == [True] * 5 + [False] * 3
    assert D._top_names(["a/b", "./c/d", ".", "e", "a/x"], "x") == {"a", "c", "e"}


def test_download_messages(tmp_path):
    src, good = _src(tmp_path)
    cases = [
        (lambda: D.download("ftp://x/y", tmp_path / "o", None), ValueError,
         "url must be http(s)://, file:// or a local path, got 'ftp://x/y'"),
        (lambda: D.download(str(tmp_path / "nope"), tmp_path / "o", None), FileNotFoundError,
         f"source file not found: {tmp_path / 'nope'}"),
        (lambda: D.download(str(src), tmp_path / "o", 123), ValueError,
         "sha256 must be a 64-character hex digest or None, got 123"),
        (lambda: D.download(str(src), tmp_path / "o", "ab"), ValueError,
         "sha256 must be a 64-character hex digest or None, got 'ab'"),
        (lambda: D.download(str(src), tmp_path / "o", "A" * 64), ValueError,
         f"checksum mismatch for o from {src}: expected sha256 {'a' * 64}, got {good}"),
        (lambda: D.extract(tmp_path / "nope.zip", tmp_path / "out"), FileNotFoundError,
         f"archive not found: {tmp_path / 'nope.zip'}"),
    ]
    for call, error, message in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
    assert not (tmp_path / "o").exists()


def test_download_accepts_an_upper_case_digest_and_keeps_a_matching_file(tmp_path):
    src, good = _src(tmp_path, b"content")
    out = D.download(src.as_uri(), tmp_path / "d" / "a.bin", good.upper())
    assert out == tmp_path / "d" / "a.bin" and out.read_bytes() == b"content"
    mtime = out.stat().st_mtime_ns
    assert D.download(str(tmp_path / "gone"), out, good.upper()) == out and out.stat().st_mtime_ns == mtime
    src.write_bytes(b"new content")
    assert D.download(str(src), out, None).read_bytes() == b"new content"        # None: always fetched again


class _Response(io.BytesIO):
    """An HTTP-like response: its length is known (file:// responses have none)."""

    def __init__(self, data, length):
        super().__init__(data)
        self.length = length


def test_download_progress_bar_for_large_files(tmp_path, capsys, monkeypatch):
    """A bar (named after the file) only when asked and only past 8 MiB of announced length."""
    data = b"abc" * 1000
    good = hashlib.sha256(data).hexdigest()
    for name, length, progress, shown in (("big.bin", (8 << 20) + 1, True, True), ("quiet.bin", 9 << 20, False, False),
                                          ("edge.bin", 8 << 20, True, False), ("none.bin", None, True, False)):
        monkeypatch.setattr(D, "_open_url", lambda url, timeout, length=length: _Response(data, length))
        assert D.download("http://example.invalid/x", tmp_path / name, good, progress=progress).read_bytes() == data
        err = capsys.readouterr().err
        assert (name in err) is shown, name


def test_download_passes_its_timeout(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(D, "_open_url", lambda url, timeout: seen.append((url, timeout)) or _Response(b"x", 1))
    D.download("http://example.invalid/a", tmp_path / "a", None)
    D.download("http://example.invalid/b", tmp_path / "b", None, timeout=5.0)
    assert seen == [("http://example.invalid/a", 60.0), ("http://example.invalid/b", 5.0)]


def test_only_old_partial_downloads_of_the_same_name_are_removed(tmp_path):
    src, good = _src(tmp_path)
    d = tmp_path / "dl"
    d.mkdir()
    names = [".a.bin.1.part", ".a.bin.2.part", ".b.bin.1.part", "a.bin.1.part", ".a.bin.1.tmp"]
    for n in names:
        (d / n).write_bytes(b"p")
        old = time.time() - 2 * 3600
        os.utime(d / n, (old, old))
    young = d / ".a.bin.3.part"
    young.write_bytes(b"p")
    D.download(str(src), d / "a.bin", good)
    assert sorted(p.name for p in d.iterdir()) == sorted([".a.bin.3.part", ".b.bin.1.part", "a.bin.1.part",
                                                          ".a.bin.1.tmp", "a.bin"])


def _tar_with(path, infos):
    with tarfile.open(path, "w") as tf:
        for info, data in infos:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def test_tar_members_by_kind(tmp_path):
    f = tarfile.TarInfo("d/f.txt")
    f.size = 1
    link = tarfile.TarInfo("d/link")
    link.type, link.linkname = tarfile.SYMTYPE, "f.txt"
    hard = tarfile.TarInfo("d/hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "d/f.txt"
    out = D.extract(_tar_with(tmp_path / "ok.tar", [(f, b"1"), (link, None), (hard, None)]), tmp_path / "o1")
    assert (out / "d" / "link").is_symlink() and (out / "d" / "hard").read_bytes() == b"1"
    bad_hard = tarfile.TarInfo("d/h2")
    bad_hard.type, bad_hard.linkname = tarfile.LNKTYPE, "../outside"
    with pytest.raises(ValueError, match="^bad.tar: member '../outside' points outside the target folder"):
        D.extract(_tar_with(tmp_path / "bad.tar", [(f, b"1"), (bad_hard, None)]), tmp_path / "o2")
    fifo = tarfile.TarInfo("d/fifo")
    fifo.type = tarfile.FIFOTYPE
    with pytest.raises(ValueError) as info:
        D.extract(_tar_with(tmp_path / "dev.tar", [(fifo, None)]), tmp_path / "o3")
    assert str(info.value) == "dev.tar: member 'd/fifo' is a device or special file; refusing to extract"
    assert not (tmp_path / "o2").exists() or list((tmp_path / "o2").iterdir()) == []
    assert list((tmp_path / "o3").iterdir()) == []


def test_zip_symlinks_are_refused(tmp_path):
    info = zipfile.ZipInfo("d/link")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / "l.zip", "w") as zf:
        zf.writestr("d/a.txt", "a")
        zf.writestr(info, "a.txt")
    with pytest.raises(ValueError) as err:
        D.extract(tmp_path / "l.zip", tmp_path / "out")
    assert str(err.value) == "l.zip: member 'd/link' is a symbolic link; refusing to extract"


def test_extract_messages_and_what_it_leaves(tmp_path):
    dest = tmp_path / "data"
    (dest / "A").mkdir(parents=True)
    (dest / "b.txt").write_text("old")
    with zipfile.ZipFile(tmp_path / "p.zip", "w") as zf:
        zf.writestr("A/x.txt", "x")
        zf.writestr("b.txt", "new")
        zf.writestr("c.txt", "c")
    with pytest.raises(FileExistsError) as info:
        D.extract(tmp_path / "p.zip", dest)
    assert str(info.value) == (f"p.zip: ['A', 'b.txt'] already exist in {dest}; nothing was changed. "
                               "Pass overwrite=True to replace them")
    assert sorted(p.name for p in dest.iterdir()) == ["A", "b.txt"]
    assert D.extract(tmp_path / "p.zip", dest, overwrite=True) == dest
    assert (dest / "b.txt").read_text() == "new" and (dest / "A" / "x.txt").read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "p.zip"]            # no temp folder left
    (dest / "lnk").symlink_to(dest / "c.txt")
    with zipfile.ZipFile(tmp_path / "q.zip", "w") as zf:
        zf.writestr("lnk", "now a file")
    D.extract(tmp_path / "q.zip", dest, overwrite=True)
    assert not (dest / "lnk").is_symlink() and (dest / "lnk").read_text() == "now a file"
    archive = dest / "r.tar"
    _tar_with(archive, [])
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("r.tar")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"r"))
    with pytest.raises(ValueError) as info:
        D.extract(archive, dest, overwrite=True)
    assert str(info.value) == (f"r.tar: member 'r.tar' would replace the archive itself in {dest}; "
                               "extract it somewhere else")


def test_corrupt_archive_messages(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"not an archive at all" * 50)
    with pytest.raises(ValueError) as info:
        D.extract(tmp_path / "junk.tar", tmp_path / "out")
    assert str(info.value).startswith("junk.tar is corrupt, truncated or not a zip/tar/7z archive: ")
    with zipfile.ZipFile(tmp_path / "c.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", b"\1" * 500)
    raw = bytearray((tmp_path / "c.zip").read_bytes())
    raw[100] ^= 0xFF
    (tmp_path / "c.zip").write_bytes(bytes(raw))
    with pytest.raises(ValueError) as info:
        D.extract(tmp_path / "c.zip", tmp_path / "out")
    assert str(info.value) == "c.zip is corrupt: member 'a.bin' fails its CRC check"
