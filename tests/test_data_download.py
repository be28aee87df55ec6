"""Checked downloads and safe extraction: every bad input fails clearly and leaves nothing."""

import hashlib
import io
import os
import tarfile
import time
import zipfile

import pytest

from regkit.data import download, extract, sha256sum


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_download_verifies_and_is_atomic(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    out = download(src.as_uri(), tmp_path / "dl" / "a.bin", sha256=good)
    assert sha256sum(out) == good
    assert download(str(src), tmp_path / "dl" / "b.bin", sha256=good).is_file()  # a plain path works too
    with pytest.raises(ValueError, match="checksum mismatch"):
        download(src.as_uri(), tmp_path / "bad" / "c.bin", sha256="0" * 64)
    assert _listing(tmp_path / "bad") == []                      # no partial or temp file
    with pytest.raises(FileNotFoundError):
        download(str(tmp_path / "nope.bin"), tmp_path / "bad" / "d.bin", sha256=good)
    assert _listing(tmp_path / "bad") == []
    with pytest.raises(ValueError, match="sha256"):
        download(str(src), tmp_path / "e.bin", sha256="abc")


def test_extract_tar_and_zip(tmp_path):
    _tar(tmp_path / "a.tar.gz", {"top/x.txt": b"1", "top/sub/y.txt": b"2"})
    dest = extract(tmp_path / "a.tar.gz", tmp_path / "out")
    assert (dest / "top" / "sub" / "y.txt").read_bytes() == b"2"
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr("z/a.txt", "hello")
    assert (extract(tmp_path / "b.zip", tmp_path / "out2") / "z" / "a.txt").read_text() == "hello"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # temp folders removed


@pytest.mark.parametrize("name", ["../evil.txt", "ok/../../evil.txt", "/abs/evil.txt"])
def test_members_outside_the_folder_are_refused(tmp_path, name):
    _tar(tmp_path / "bad.tar.gz", {"good.txt": b"fine", name: b"evil"})
    with pytest.raises(ValueError, match="outside the target folder|absolute path"):
        extract(tmp_path / "bad.tar.gz", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr("good.txt", "fine")
        zf.writestr(name, "evil")
    with pytest.raises(ValueError, match="outside the target folder|absolute path"):
        extract(tmp_path / "bad.zip", tmp_path / "out")
    assert _listing(tmp_path / "out") == [] and not (tmp_path / "evil.txt").exists()


def test_escaping_symlink_is_refused(tmp_path):
    with tarfile.open(tmp_path / "link.tar", "w") as tf:
        info = tarfile.TarInfo("data/link")
        info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(ValueError, match="outside the target folder"):
        extract(tmp_path / "link.tar", tmp_path / "out")
    assert _listing(tmp_path / "out") == []


def test_corrupt_and_truncated_archives(tmp_path):
    payload = {f"f{i}.bin": bytes(range(256)) * 200 for i in range(4)}
    whole = _tar(tmp_path / "a.tar.gz", payload).read_bytes()
    (tmp_path / "trunc.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        extract(tmp_path / "trunc.tar.gz", tmp_path / "out")
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04 this is not an archive")
    with pytest.raises(ValueError, match="corrupt"):
        extract(tmp_path / "junk.zip", tmp_path / "out")
    with zipfile.ZipFile(tmp_path / "c.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for k, v in payload.items():
            zf.writestr(k, v)
    raw = bytearray((tmp_path / "c.zip").read_bytes())
    raw[200] ^= 0xFF                                               # flip a byte inside the first member
    (tmp_path / "flip.zip").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        extract(tmp_path / "flip.zip", tmp_path / "out")
    assert _listing(tmp_path / "out") == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(FileNotFoundError):
        extract(tmp_path / "missing.zip", tmp_path / "out")


# --- faults left by killed processes, existing files, odd archives -----------------------------


def test_stale_partial_downloads_are_removed(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"y" * 100)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    d = tmp_path / "dl"
    d.mkdir()
    stale = [d / ".tmp-abc123.part", d / ".a.bin.xyz.part"]          # atomic_write's and an older naming
    fresh = d / ".tmp-def456.part"                                    # a download still running
    for p in stale + [fresh]:
        p.write_bytes(b"partial")
    old = time.time() - 2 * 3600
    for p in stale:
        os.utime(p, (old, old))
    download(src.as_uri(), d / "a.bin", sha256=good)
    assert not any(p.exists() for p in stale) and fresh.exists()
    assert sorted(p.name for p in d.iterdir()) == [".tmp-def456.part", "a.bin"]


@pytest.mark.parametrize("sha", ["known", None])
def test_an_existing_file_is_never_kept_unchecked(tmp_path, sha):
    src = tmp_path / "src.bin"
    src.write_bytes(b"the real content")
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"stale, from an older or broken download")
    out = download(src.as_uri(), dest, sha256=good if sha else None)
    assert out.read_bytes() == b"the real content"
    dest.write_bytes(b"the real content")                              # now it matches: kept, not fetched
    assert download(str(tmp_path / "missing.bin"), dest, sha256=good).read_bytes() == b"the real content"


def test_archive_root_member_is_skipped(tmp_path):
    src = tmp_path / "d"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    with tarfile.open(tmp_path / "x.tgz", "w:gz") as tf:               # as `tar -C d -czf x.tgz .` makes it
        tf.add(src, arcname=".")
    assert tarfile.open(tmp_path / "x.tgz").getnames()[0] == "."
    out = extract(tmp_path / "x.tgz", tmp_path / "out")
    assert _listing(out) == ["a.txt", "sub", "sub/b.txt"]
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("./", "")
        zf.writestr("./c.txt", "c")
    assert (extract(tmp_path / "x.zip", tmp_path / "out2") / "c.txt").read_text() == "c"


def test_existing_entries_are_kept_unless_overwrite(tmp_path):
    dest = tmp_path / "data"
    (dest / "FIRE").mkdir(parents=True)
    (dest / "FIRE" / "my_notes.txt").write_text("mine")
    _tar(tmp_path / "fire.tgz", {"FIRE/Images/a.jpg": b"jpg", "other.txt": b"o"})
    with pytest.raises(FileExistsError, match="overwrite=True"):
        extract(tmp_path / "fire.tgz", dest)
    assert _listing(dest) == ["FIRE", "FIRE/my_notes.txt"]            # nothing touched, nothing added
    extract(tmp_path / "fire.tgz", dest, overwrite=True)
    assert _listing(dest) == ["FIRE", "FIRE/Images", "FIRE/Images/a.jpg", "other.txt"]


def test_never_extracts_over_the_archive_itself(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    archive = _tar(d / "pack.tar.gz", {"pack.tar.gz": b"not the archive", "x.txt": b"x"})
    before = archive.read_bytes()
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="archive itself"):
            extract(archive, d, overwrite=overwrite)
        assert archive.read_bytes() == before and not (d / "x.txt").exists()
    inner = d / "FIRE"
    inner.mkdir()
    nested = _tar(inner / "FIRE.tgz", {"FIRE/a.txt": b"a"})            # replacing FIRE/ would delete it
    with pytest.raises(ValueError, match="archive itself"):
        extract(nested, d, overwrite=True)
    assert nested.is_file()


def test_7z_extracts_and_refuses_traversal(tmp_path, monkeypatch):
    py7zr = pytest.importorskip("py7zr")
    with py7zr.SevenZipFile(tmp_path / "ok.7z", "w") as z:
        z.writestr(b"hello", "top/a.txt")
    assert (extract(tmp_path / "ok.7z", tmp_path / "out") / "top" / "a.txt").read_bytes() == b"hello"
    # py7zr refuses to *write* such names; switch its check off to craft the hostile archive
    monkeypatch.setattr(py7zr.py7zr, "check_archive_path", lambda name: True)
    with py7zr.SevenZipFile(tmp_path / "bad.7z", "w") as z:
        z.writestr(b"fine", "good.txt")
        z.writestr(b"evil", "../evil.txt")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="outside the target folder"):
        extract(tmp_path / "bad.7z", tmp_path / "out7")
    assert _listing(tmp_path / "out7") == [] and not (tmp_path / "evil.txt").exists()
    (tmp_path / "trunc.7z").write_bytes((tmp_path / "ok.7z").read_bytes()[:40])
    with pytest.raises(ValueError, match="corrupt"):
        extract(tmp_path / "trunc.7z", tmp_path / "out8")
