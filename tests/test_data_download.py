"""Checked downloads and safe extraction: every bad input fails clearly and leaves nothing."""

import hashlib
import io
import tarfile
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
