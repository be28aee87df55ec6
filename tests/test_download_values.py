"""regkit.data.download by value: exact messages, member names and links, progress, stale partial
files, the archive kinds and what an extraction leaves."""

import hashlib
import importlib
import io
import os
import shutil
import stat
import sys
import tarfile
import time
import types
import zipfile
from pathlib import Path
from pathlib import PurePosixPath as P
from types import SimpleNamespace

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
        (lambda: D.download(str(src), tmp_path / "o", "g" * 64), ValueError,  # 64 characters, not hex
         f"sha256 must be a 64-character hex digest or None, got {'g' * 64!r}"),
        (lambda: D.download(str(src), tmp_path / "o", "a" * 63 + "X"), ValueError,  # one non-hex letter
         f"sha256 must be a 64-character hex digest or None, got {'a' * 63 + 'X'!r}"),
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


# --- URL schemes and the timeout ------------------------------------------------------------------


def test_open_url_passes_http_https_and_file_to_urlopen_with_the_timeout(monkeypatch):
    """Each accepted scheme reaches urlopen, with the caller's timeout (kills a dropped scheme or timeout)."""
    seen = []
    monkeypatch.setattr("urllib.request.urlopen", lambda url, **kw: seen.append((url, kw)) or "response")
    urls = ["http://example.invalid/a", "https://example.invalid/b", "file:///nowhere/c", "HTTPS://EXAMPLE.invalid/d"]
    assert [D._open_url(u, 7.5) for u in urls] == ["response"] * 4
    assert seen == [(u, {"timeout": 7.5}) for u in urls]


@pytest.mark.parametrize("url", ["ftp://example.invalid/x", "data:,x", "c:/x.bin", "ab:/x.bin"])
def test_open_url_refuses_other_schemes(url, monkeypatch):
    """Other schemes (a one-letter one is not a drive off Windows) fail clearly and never reach urlopen."""
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **kw: pytest.fail(f"urlopen called for {url}"))
    with pytest.raises(ValueError) as info:
        D._open_url(url, 1.0)
    assert str(info.value) == f"url must be http(s)://, file:// or a local path, got {url!r}"


def test_open_url_reads_a_drive_letter_path_on_windows(tmp_path, monkeypatch):
    """On Windows ``c:/...`` is a local path (one-letter scheme only); elsewhere it is refused (above)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c:").mkdir()
    (tmp_path / "c:" / "x.bin").write_bytes(b"drive")
    (tmp_path / "ab:").mkdir()
    (tmp_path / "ab:" / "x.bin").write_bytes(b"two letters")
    monkeypatch.setattr(D, "os", SimpleNamespace(name="nt", path=os.path))
    with D._open_url("c:/x.bin", 1.0) as f:
        assert f.read() == b"drive"
    with pytest.raises(FileNotFoundError, match="^source file not found: d:/missing$"):
        D._open_url("d:/missing", 1.0)
    with pytest.raises(ValueError, match="^url must be http"):
        D._open_url("ab:/x.bin", 1.0)


# --- the download loop: temp file, progress bar, chunks -------------------------------------------


class _Recorded(io.BytesIO):
    """A response that records the sizes asked of read() and calls ``on_read`` once."""

    def __init__(self, data, length=None, on_read=None):
        super().__init__(data)
        self.length, self.sizes, self.on_read = length, [], on_read

    def read(self, size=-1):
        self.sizes.append(size)
        if self.on_read is not None:
            self.on_read()
            self.on_read = None
        return super().read(size)


class _Bar:
    """Stands in for tqdm: records how it was built, its updates and whether it was closed."""

    made = []

    def __init__(self, **kwargs):
        self.kwargs, self.updates, self.closed = kwargs, [], False
        _Bar.made.append(self)

    def update(self, n):
        self.updates.append(n)

    def close(self):
        self.closed = True


def test_download_progress_bar_by_default_in_1_mib_chunks(tmp_path, monkeypatch):
    """progress defaults to on; the bar counts bytes of the announced total; reads are 1 MiB at a time."""
    data = bytes(range(256)) * (4096 * 9) + b"tail!"                      # 9 MiB + 5 bytes
    response = _Recorded(data, length=len(data))
    monkeypatch.setattr(D, "_open_url", lambda url, timeout: response)
    monkeypatch.setattr("tqdm.auto.tqdm", _Bar)
    monkeypatch.setattr(_Bar, "made", [])
    out = D.download("http://example.invalid/big", tmp_path / "big.bin", hashlib.sha256(data).hexdigest())
    assert out.read_bytes() == data
    assert set(response.sizes) == {1 << 20}
    [bar] = _Bar.made
    assert bar.kwargs == {"total": len(data), "unit": "B", "unit_scale": True, "desc": "big.bin"}
    assert bar.updates == [1 << 20] * 9 + [5] and bar.closed


def test_download_streams_into_a_dot_part_temp_file_beside_dest(tmp_path, monkeypatch):
    """While streaming, the only new file in the folder is atomic_write's ``.tmp-*.part``."""
    d = tmp_path / "dl"
    d.mkdir()
    during = []
    response = _Recorded(b"data", on_read=lambda: during.extend(os.listdir(d)))
    monkeypatch.setattr(D, "_open_url", lambda url, timeout: response)
    D.download("http://example.invalid/a", d / "a.bin", None)
    assert len(during) == 1 and during[0].startswith(".tmp-") and during[0].endswith(".part"), during
    assert os.listdir(d) == ["a.bin"]


def test_stale_parts_limit_is_strictly_older_than_an_hour(tmp_path, monkeypatch):
    """A partial file exactly STALE_AFTER_S old is kept (may still be written); one second older is removed."""
    now = 2_000_000_000.0
    monkeypatch.setattr(D, "time", SimpleNamespace(time=lambda: now))
    ages = {".a.bin.edge.part": D.STALE_AFTER_S, ".a.bin.old.part": D.STALE_AFTER_S + 1, ".a.bin.young.part": 10.0}
    for name, age in ages.items():
        (tmp_path / name).write_bytes(b"p")
        os.utime(tmp_path / name, (now - age, now - age))
    D._remove_stale_parts(tmp_path / "a.bin")
    assert sorted(os.listdir(tmp_path)) == [".a.bin.edge.part", ".a.bin.young.part"]


# --- member names and links -----------------------------------------------------------------------


def test_safe_member_path_refuses_a_bare_drive_and_keeps_every_ordinary_component():
    """'c:' alone is a drive; names that only look odd ('XXXX', 'XX.XX', 'XX/XX') are kept whole."""
    with pytest.raises(ValueError, match="^x.zip: member 'c:' has an absolute path; refusing to extract$"):
        D.safe_member_path("c:", "x.zip")
    for name in ("XX/XX/a", "XXXX/a", "XX.XX/a", "a/XXXX", "a/XX.XX/b"):
        assert D.safe_member_path(name) == P(name)


@pytest.mark.parametrize("member, target", [("l", "a/.."), ("l", "a/../b"), ("a/b/l", "x/../../.."),
                                            ("l", "XXXX/.."), ("a/l", "XX.XX/../.."), ("l", "C")])
def test_links_count_every_ordinary_component_of_their_target(member, target):
    """Depth goes up by one for each ordinary name, whatever it is called, so going back down stays inside."""
    assert D._link_inside(P(member), target, "x.tar") is None


def test_a_bare_drive_link_target_is_absolute():
    with pytest.raises(ValueError) as info:
        D._link_inside(P("l"), "C:", "x.tar")
    assert str(info.value) == "x.tar: link 'l' -> 'C:' is absolute; refusing to extract"


def test_top_names_messages_name_the_archive():
    assert D._top_names(["a/b", "c"], "x.zip") == {"a", "c"}
    with pytest.raises(ValueError, match="^x.zip: member '../d' points outside the target folder"):
        D._top_names(["a/b", "../d"], "x.zip")


# --- tar and zip: messages, directories, modes, what is replaced ----------------------------------


def _file(name, data=b"1", mode=0o644):
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _dir(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    return info, None


def _fifo(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info, None


def _sym(name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def _leftovers(tmp_path):
    """Temp folders an extraction left beside its target."""
    return [p.name for p in tmp_path.iterdir() if ".extract-" in p.name]


TAR_REFUSALS = [
    # the member's own check names the archive (not None, not 'archive')
    ([_file("../x")], "t.tar: member '../x' points outside the target folder; refusing to extract"),
    # the first bad member is reported, before a later special file
    ([_file("../x"), _fifo("fifo")],
     "t.tar: member '../x' points outside the target folder; refusing to extract"),
    # directories are checked too (only the root entry '.' is skipped)
    ([_dir("../evil"), _file("ok")], "t.tar: member '../evil' points outside the target folder; refusing to extract"),
    # the link is judged from the member's own folder, and the message names the archive and member
    ([_sym("a/l", "../../b")], "t.tar: link 'a/l' -> '../../b' points outside the target folder"),
]


def test_tar_keeps_empty_folders_and_links_that_stay_inside(tmp_path):
    """Directory entries are extracted (only '.' is skipped); 'a/b/l -> ../c' stays inside."""
    members = [_dir("."), _dir("d/empty"), _file("a/c", b"c"), _sym("a/b/l", "../c"), _sym("x", "./a")]
    out = D.extract(_tar_with(tmp_path / "t.tar", members), tmp_path / "out")
    assert (out / "d" / "empty").is_dir() and list((out / "d" / "empty").iterdir()) == []
    assert (out / "a" / "b" / "l").is_symlink() and (out / "a" / "b" / "l").read_bytes() == b"c"
    assert os.readlink(out / "x") == "./a"


def test_tar_modes_go_through_the_data_filter(tmp_path):
    """filter='data': no world-writable or setuid files, and the owner can always read and write."""
    members = [_file("wide", mode=0o4777), _file("none", mode=0o000), _file("exe", mode=0o750)]
    out = D.extract(_tar_with(tmp_path / "t.tar", members), tmp_path / "out")
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes == {"wide": 0o755, "none": 0o600, "exe": 0o750}


def _zip_with(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return path


def _zip_link(name):
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info


ZIP_REFUSALS = [
    ([("../x", "x")], "z.zip: member '../x' points outside the target folder; refusing to extract"),
    # the first bad member is reported, before a later symbolic link
    ([("../x", "x"), (_zip_link("l"), "t")],
     "z.zip: member '../x' points outside the target folder; refusing to extract"),
    # directories are checked too (only the root entry './' is skipped)
    ([("../evil/", ""), ("ok", "o")], "z.zip: member '../evil/' points outside the target folder; refusing to extract"),
    ([("/abs", "a")], "z.zip: member '/abs' has an absolute path; refusing to extract"),
]


REFUSALS = ([("t.tar", _tar_with, members, message) for members, message in TAR_REFUSALS]
            + [("z.zip", _zip_with, entries, message) for entries, message in ZIP_REFUSALS])


@pytest.mark.parametrize("name, build, members, message", REFUSALS)
def test_archive_refusals_by_message(tmp_path, name, build, members, message):
    """The exact refusal; nothing is extracted and no temporary folder is left beside the target."""
    with pytest.raises(ValueError) as info:
        D.extract(build(tmp_path / name, members), tmp_path / "out")
    assert str(info.value) == message
    assert list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []


def test_zip_keeps_empty_folders(tmp_path):
    out = D.extract(_zip_with(tmp_path / "z.zip", [("./", ""), ("e/", ""), ("f/g.txt", "g")]), tmp_path / "out")
    assert sorted(p.name for p in out.iterdir()) == ["e", "f"] and list((out / "e").iterdir()) == []


def test_extract_creates_missing_parent_folders(tmp_path):
    out = D.extract(_zip_with(tmp_path / "z.zip", [("a.txt", "a")]), tmp_path / "p" / "q" / "out")
    assert (out / "a.txt").read_text() == "a" and out == tmp_path / "p" / "q" / "out"
    assert sorted(p.name for p in (tmp_path / "p" / "q").iterdir()) == ["out"]


def test_corrupt_zip_and_extraction_errors_by_message(tmp_path):
    """A bad central directory and an OS error while extracting both become 'corrupt or truncated'."""
    raw = bytearray(_zip_with(tmp_path / "z.zip", [("a.txt", "a")]).read_bytes())
    raw[raw.find(b"PK\x01\x02") + 3] = 9
    (tmp_path / "cd.zip").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="^cd.zip is corrupt or truncated: Bad magic number for central directory$"):
        D.extract(tmp_path / "cd.zip", tmp_path / "out")
    _zip_with(tmp_path / "nd.zip", [("a", "file"), ("a/b", "under a file")])
    with pytest.raises(ValueError, match=r"^nd.zip is corrupt or truncated: \[Errno 20\] Not a directory"):
        D.extract(tmp_path / "nd.zip", tmp_path / "out")
    _tar_with(tmp_path / "nd.tar", [_file("a"), _file("a/b")])
    with pytest.raises(ValueError, match=r"^nd.tar is corrupt, truncated or not a zip/tar/7z archive: \[Errno 20\] "):
        D.extract(tmp_path / "nd.tar", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []


def test_overwrite_replaces_a_file_or_a_dangling_link_by_a_folder(tmp_path):
    """An existing file or dangling link where the archive has a folder is removed first (rename can't)."""
    dest = tmp_path / "data"
    dest.mkdir()
    (dest / "A").write_text("a file")
    (dest / "B").symlink_to(tmp_path / "gone")
    D.extract(_zip_with(tmp_path / "z.zip", [("A/x.txt", "x"), ("B/y.txt", "y")]), dest, overwrite=True)
    assert (dest / "A" / "x.txt").read_text() == "x" and (dest / "B" / "y.txt").read_text() == "y"
    assert not (dest / "B").is_symlink()


# --- 7z through a stand-in py7zr (the real one is not a dependency) -------------------------------


def _fake_py7zr(monkeypatch, entries, contents=None, fail=None):
    """Put a stand-in ``py7zr`` in sys.modules; returns its call log."""
    log = {"opened": [], "extracted": []}

    class ArchiveError(Exception):
        pass

    class SevenZipFile:
        def __init__(self, file, mode="r"):
            log["opened"].append((Path(file), mode))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def list(self):
            return list(entries)

        def extractall(self, path=None):
            log["extracted"].append(Path(path))
            if fail is not None:
                fail(Path(path), ArchiveError)
            for e in entries:
                if e.is_directory:
                    (Path(path) / e.filename).mkdir(parents=True, exist_ok=True)
                elif not _is_root_name(e.filename):
                    (Path(path) / e.filename).parent.mkdir(parents=True, exist_ok=True)
                    (Path(path) / e.filename).write_bytes((contents or {}).get(e.filename, b""))

    module = types.ModuleType("py7zr")
    module.SevenZipFile = SevenZipFile
    module.exceptions = SimpleNamespace(ArchiveError=ArchiveError)
    monkeypatch.setitem(sys.modules, "py7zr", module)
    return log


def _is_root_name(name):
    return name.strip("./") == ""


def _e(name, directory=False, symlink=False, special=False):
    """A stand-in py7zr entry; py7zr's ``is_file`` is false for folders, links and special files."""
    return SimpleNamespace(filename=name, is_directory=directory, is_symlink=symlink,
                           is_file=not (directory or symlink or special))


def test_7z_without_py7zr_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "py7zr", None)                 # import py7zr -> ImportError
    (tmp_path / "x.7z").write_bytes(b"7z\xbc\xaf\x27\x1c")
    with pytest.raises(ValueError) as info:
        D.extract(tmp_path / "x.7z", tmp_path / "out")
    assert str(info.value) == ("x.7z is a 7z archive: install py7zr (pip install py7zr) or extract it yourself "
                               "with `7z x` and point root= at the extracted folder")
    assert list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []


def test_7z_extracts_through_a_temp_folder_beside_dest(tmp_path, monkeypatch):
    """Root entry '.' skipped, members moved from a '.<dest>.extract-*' folder beside dest, which is removed."""
    entries = [_e(".", directory=True), _e("top", directory=True), _e("top/a.txt"), _e("b.txt")]
    log = _fake_py7zr(monkeypatch, entries, {"top/a.txt": b"A", "b.txt": b"B"})
    (tmp_path / "x.7z").write_bytes(b"7z")
    out = D.extract(tmp_path / "x.7z", tmp_path / "out")
    assert (out / "top" / "a.txt").read_bytes() == b"A" and (out / "b.txt").read_bytes() == b"B"
    assert log["opened"] == [(tmp_path / "x.7z", "r")]
    [tmp] = log["extracted"]
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.extract-") and not tmp.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "x.7z"]


SEVEN_Z_REFUSALS = [
    ([_e("../x")], "x.7z: member '../x' points outside the target folder; refusing to extract"),
    ([_e("/etc/x")], "x.7z: member '/etc/x' has an absolute path; refusing to extract"),
    ([_e("C:/x")], "x.7z: member 'C:/x' has an absolute path; refusing to extract"),
    ([_e("d/l", symlink=True)], "x.7z: member 'd/l' is a symbolic link; refusing to extract"),
    # checked in order: the first bad member is reported, also when a directory or after the root entry
    ([_e("../x"), _e("l", symlink=True)], "x.7z: member '../x' points outside the target folder; refusing to extract"),
    ([_e("../evil", directory=True), _e("l", symlink=True)],
     "x.7z: member '../evil' points outside the target folder; refusing to extract"),
    ([_e(".", directory=True), _e("ok"), _e("l", symlink=True)],
     "x.7z: member 'l' is a symbolic link; refusing to extract"),
]


@pytest.mark.parametrize("entries, message", SEVEN_Z_REFUSALS)
def test_7z_member_refusals_by_message(tmp_path, monkeypatch, entries, message):
    log = _fake_py7zr(monkeypatch, entries)
    (tmp_path / "x.7z").write_bytes(b"7z")
    with pytest.raises(ValueError) as info:
        D.extract(tmp_path / "x.7z", tmp_path / "out")
    assert str(info.value) == message
    assert log["extracted"] == [] and list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []


def test_7z_error_is_reported_even_if_the_temp_folder_is_already_gone(tmp_path, monkeypatch):
    """Cleaning up the temp folder never hides the archive's own error."""
    def fail(path, error):
        shutil.rmtree(path)
        raise error("bad block")

    _fake_py7zr(monkeypatch, [_e("a.txt")], fail=fail)
    (tmp_path / "x.7z").write_bytes(b"7z")
    with pytest.raises(ValueError, match="^x.7z is corrupt or truncated: bad block$"):
        D.extract(tmp_path / "x.7z", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []


def test_7z_refuses_a_special_file_before_extracting(tmp_path, monkeypatch):
    """A socket, FIFO or device entry (neither file, folder nor link) is refused like tar's."""
    entries = [_e("top", directory=True), _e("top/a.txt"), _e("top/fifo", special=True)]
    log = _fake_py7zr(monkeypatch, entries)
    (tmp_path / "s.7z").write_bytes(b"7z")
    with pytest.raises(ValueError) as info:
        D.extract(tmp_path / "s.7z", tmp_path / "out")
    assert str(info.value) == "s.7z: member 'top/fifo' is a device or special file; refusing to extract"
    assert log["extracted"] == [] and list((tmp_path / "out").iterdir()) == [] and _leftovers(tmp_path) == []
