"""Checked downloads and safe archive extraction.

Convention
----------
- :func:`download` streams a URL (``http(s)://``, ``file://`` or a local path) into a temporary
  file next to the destination, checks its SHA-256 and only then renames it into place, so an
  interrupted or corrupt download never leaves a file under the final name.
- :func:`extract` checks every member of a zip or tar archive *before* extracting anything:
  absolute paths, ``..`` components, links that point outside the target folder, and device
  files are refused. It extracts into a temporary folder beside the target and moves the
  result in at the end, so a corrupt or truncated archive leaves nothing behind.
- Both raise ``ValueError`` (bad content: checksum, corrupt archive, unsafe member) or
  ``FileNotFoundError`` (missing input) with a message that names the file.

Example
-------
>>> import hashlib, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "a.txt").write_bytes(b"hi") and None
>>> sha256sum(d / "a.txt") == hashlib.sha256(b"hi").hexdigest()
True
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..files import atomic_write, sha256sum

__all__ = ["sha256sum", "download", "extract", "safe_member_path"]

_CHUNK = 1 << 20


def _open_url(url: str, timeout: float):
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme in ("http", "https", "file"):
        return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (scheme checked above)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and os.name == "nt"):
        if not os.path.isfile(url):
            raise FileNotFoundError(f"source file not found: {url}")
        return open(url, "rb")
    raise ValueError(f"url must be http(s)://, file:// or a local path, got {url!r}")


def download(url: str, dest, sha256: str | None, *, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically and check its SHA-256.

    Parameters
    ----------
    url : str
        ``http(s)://``, ``file://`` or a local path.
    dest : path
        Final file name; its folder is created if needed. An existing ``dest`` whose hash
        matches is kept and nothing is downloaded.
    sha256 : str or None
        Expected hex digest. ``None`` skips the check: pass it only knowingly (the function
        still returns, and the caller can read :func:`sha256sum`).

    Returns
    -------
    Path of the verified file.
    """
    dest = Path(dest)
    if sha256 is not None and (not isinstance(sha256, str) or len(sha256) != 64):
        raise ValueError(f"sha256 must be a 64-character hex digest or None, got {sha256!r}")
    if dest.is_file() and sha256 is not None and sha256sum(dest) == sha256.lower():
        return dest
    h = hashlib.sha256()
    with atomic_write(dest, "wb", suffix=".part") as out, _open_url(url, timeout) as src:
        total = getattr(src, "length", None) or None
        bar = None
        if progress and total and total > 8 * _CHUNK:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name)
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            out.write(chunk)
            h.update(chunk)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            raise ValueError(
                f"checksum mismatch for {dest.name} from {url}: expected sha256 {sha256.lower()}, got {digest}"
            )
    return dest


def safe_member_path(name: str, archive: str = "archive") -> PurePosixPath:
    """Normalise an archive member name; refuse absolute paths and ``..`` components.

    >>> str(safe_member_path("a/./b.txt"))
    'a/b.txt'
    """
    clean = name.replace("\\", "/")
    p = PurePosixPath(clean)
    if clean.startswith("/") or p.is_absolute() or (len(clean) > 1 and clean[1] == ":"):
        raise ValueError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    parts = [part for part in p.parts if part not in ("", ".")]
    if any(part == ".." for part in parts):
        raise ValueError(f"{archive}: member {name!r} points outside the target folder; refusing to extract")
    if not parts:
        raise ValueError(f"{archive}: member {name!r} has an empty name")
    return PurePosixPath(*parts)


def _link_inside(member: PurePosixPath, target: str, archive: str) -> None:
    """Refuse a link whose target leaves the extraction folder."""
    if target.startswith("/") or (len(target) > 1 and target[1] == ":"):
        raise ValueError(f"{archive}: link {str(member)!r} -> {target!r} is absolute; refusing to extract")
    depth = len(member.parts) - 1
    for part in PurePosixPath(target.replace("\\", "/")).parts:
        if part == "..":
            depth -= 1
        elif part not in ("", "."):
            depth += 1
        if depth < 0:
            raise ValueError(f"{archive}: link {str(member)!r} -> {target!r} points outside the target folder")


def _check_tar(tf: tarfile.TarFile, archive: str) -> None:
    for m in tf.getmembers():
        path = safe_member_path(m.name, archive)
        if m.issym():
            _link_inside(path, m.linkname, archive)
        elif m.islnk():
            safe_member_path(m.linkname, archive)
        elif not (m.isfile() or m.isdir()):
            raise ValueError(f"{archive}: member {m.name!r} is a device or special file; refusing to extract")


def _check_zip(zf: zipfile.ZipFile, archive: str) -> None:
    for info in zf.infolist():
        safe_member_path(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ValueError(f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract")


def _extract_7z(archive: Path, tmp: Path) -> None:
    try:
        import py7zr
    except ImportError:
        raise ValueError(
            f"{archive.name} is a 7z archive: install py7zr (pip install py7zr) or extract it yourself "
            "with `7z x` and point root= at the extracted folder"
        ) from None
    try:
        with py7zr.SevenZipFile(archive, "r") as z:
            for name in z.getnames():
                safe_member_path(name, archive.name)
            z.extractall(path=tmp)
    except py7zr.exceptions.ArchiveError as err:  # pragma: no cover - needs py7zr
        raise ValueError(f"{archive.name} is corrupt or truncated: {err}") from None


def extract(archive, dest) -> Path:
    """Extract a zip, tar (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) or 7z archive
    safely into ``dest``.

    Every member is checked first; extraction happens in a temporary folder beside ``dest`` and
    its top-level entries are then moved into ``dest`` (replacing entries of the same name).
    On any error nothing new is left in ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.extract-"))
    name = archive.name
    try:
        if name.endswith(".7z"):
            _extract_7z(archive, tmp)
        elif zipfile.is_zipfile(archive):
            try:
                with zipfile.ZipFile(archive) as zf:
                    _check_zip(zf, name)
                    bad = zf.testzip()
                    if bad is not None:
                        raise ValueError(f"{name} is corrupt: member {bad!r} fails its CRC check")
                    zf.extractall(tmp)
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise ValueError(f"{name} is corrupt or truncated: {err}") from None
        else:
            try:
                with tarfile.open(archive, "r:*") as tf:
                    _check_tar(tf, name)
                    tf.extractall(tmp, filter="data")
            except (tarfile.TarError, EOFError, OSError) as err:
                raise ValueError(f"{name} is corrupt, truncated or not a zip/tar/7z archive: {err}") from None
        for entry in sorted(tmp.iterdir()):
            target = dest / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
