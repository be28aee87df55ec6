"""Checked downloads and safe archive extraction.

Convention
----------
- :func:`download` streams a URL (``http(s)://``, ``file://`` or a local path) into a temporary
  file next to the destination (:func:`regkit.files.atomic_write`), checks its SHA-256 and only
  then renames it into place, so an interrupted or corrupt download never leaves a file under
  the final name. An existing file at the destination is kept only if its SHA-256 matches the
  expected one; the partial files a killed download left (older than an hour) are removed by
  the next download into the same folder.
- :func:`extract` checks every member of a zip, tar or 7z archive *before* extracting anything:
  absolute paths, ``..`` components, links that point outside the target folder, and device
  files are refused; the archive's own root entry (``.``) is skipped. It extracts into a
  temporary folder beside the target and moves the result in at the end, so a corrupt or
  truncated archive leaves nothing behind. Entries that already exist in the target are
  replaced only with ``overwrite=True``, and never the archive itself.
- Both raise ``ValueError`` (bad content: checksum, corrupt archive, unsafe member),
  ``FileExistsError`` (would replace existing files) or ``FileNotFoundError`` (missing input)
  with a message that names the file.

Example
-------
>>> import hashlib, tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "a.txt").write_bytes(b"hi") and None
>>> sha256sum(d / "a.txt") == hashlib.sha256(b"hi").hexdigest()
True
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..files import STALE_AFTER_S, atomic_write, sha256sum

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
        matches ``sha256`` is kept and nothing is downloaded; any other existing file there is
        replaced (with ``sha256=None`` it is always downloaded again).
    sha256 : str or None
        Expected hex digest. ``None`` skips the check: pass it only knowingly (the function
        still returns, and the caller can read :func:`sha256sum`).

    Returns
    -------
    Path of the verified file.
    """
    dest = Path(dest)
    if sha256 is not None and (not isinstance(sha256, str) or len(sha256) != 64
                               or not all(c in "0123456789abcdefABCDEF" for c in sha256)):
        raise ValueError(f"sha256 must be a 64-character hex digest or None, got {sha256!r}")
    if dest.is_file() and sha256 is not None and sha256sum(dest) == sha256.lower():
        return dest
    _remove_stale_parts(dest)
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


def _remove_stale_parts(dest: Path) -> None:
    """Remove partial downloads of ``dest`` older than an hour left by a killed process.

    :func:`regkit.files.atomic_write` removes its own ``.tmp-*`` files; this also clears the
    ``.<name>.*.part`` files of earlier versions of :func:`download`.
    """
    now = time.time()
    for p in glob.glob(os.path.join(os.fspath(dest.parent), glob.escape(f".{dest.name}.") + "*.part")):
        try:
            if now - os.path.getmtime(p) > STALE_AFTER_S:
                os.remove(p)
        except OSError:
            pass


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


def _is_root(name: str) -> bool:
    """The archive's own root entry (``.``, ``./``): nothing to extract."""
    return all(part in ("", ".") for part in name.replace("\\", "/").split("/"))


def _check_tar(tf: tarfile.TarFile, archive: str) -> list:
    """Check every member; return the members to extract (the root entry ``.`` skipped)."""
    keep = []
    for m in tf.getmembers():
        if m.isdir() and _is_root(m.name):
            continue
        keep.append(m)
        path = safe_member_path(m.name, archive)
        if m.issym():
            _link_inside(path, m.linkname, archive)
        elif m.islnk():
            safe_member_path(m.linkname, archive)
        elif not (m.isfile() or m.isdir()):
            raise ValueError(f"{archive}: member {m.name!r} is a device or special file; refusing to extract")
    return keep


def _check_zip(zf: zipfile.ZipFile, archive: str) -> list:
    """Check every member; return the members to extract (the root entry skipped)."""
    keep = []
    for info in zf.infolist():
        if info.is_dir() and _is_root(info.filename):
            continue
        safe_member_path(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ValueError(f"{archive}: member {info.filename!r} is a symbolic link; refusing to extract")
        keep.append(info)
    return keep


def _top_names(names, archive: str) -> set:
    """Top-level entries the members of an archive create."""
    return {safe_member_path(n, archive).parts[0] for n in names if not _is_root(n)}


def _check_targets(top: set, dest: Path, archive: Path, overwrite: bool) -> None:
    """Refuse to replace the archive itself, or existing entries without ``overwrite``."""
    arc = archive.resolve()
    for name in sorted(top):
        target = (dest / name).resolve()
        if target == arc or arc.is_relative_to(target):
            raise ValueError(f"{archive.name}: member {name!r} would replace the archive itself in {dest}; "
                             "extract it somewhere else")
    existing = sorted(name for name in top if (dest / name).exists() or (dest / name).is_symlink())
    if existing and not overwrite:
        raise FileExistsError(f"{archive.name}: {existing} already exist in {dest}; nothing was changed. "
                              "Pass overwrite=True to replace them")


def _extract_7z(archive: Path, tmp: Path, check) -> None:
    try:
        import py7zr
    except ImportError:
        raise ValueError(
            f"{archive.name} is a 7z archive: install py7zr (pip install py7zr) or extract it yourself "
            "with `7z x` and point root= at the extracted folder"
        ) from None
    try:
        with py7zr.SevenZipFile(archive, "r") as z:
            entries = z.list()
            for e in entries:
                if e.is_directory and _is_root(e.filename):
                    continue
                safe_member_path(e.filename, archive.name)
                if e.is_symlink:
                    raise ValueError(f"{archive.name}: member {e.filename!r} is a symbolic link; refusing to extract")
                if not (e.is_directory or e.is_file):   # a socket, FIFO or device (tar: _check_tar)
                    raise ValueError(
                        f"{archive.name}: member {e.filename!r} is a device or special file; refusing to extract"
                    )
            check([e.filename for e in entries])
            z.extractall(path=tmp)
    except (py7zr.exceptions.ArchiveError, EOFError, OSError) as err:
        if isinstance(err, FileExistsError):
            raise
        raise ValueError(f"{archive.name} is corrupt or truncated: {err}") from None


def extract(archive, dest, *, overwrite: bool = False) -> Path:
    """Extract a zip, tar (``.tar``, ``.tar.gz``, ``.tgz``, ``.tar.bz2``, ``.tar.xz``) or 7z archive
    safely into ``dest``.

    Every member is checked first; extraction happens in a temporary folder beside ``dest`` and
    its top-level entries are then moved into ``dest``. An entry of ``dest`` with the same name
    as one of them is replaced only with ``overwrite=True`` (else ``FileExistsError`` before
    anything is extracted), and the archive itself never is. On any error nothing new is left
    in ``dest``.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    dest.mkdir(parents=True, exist_ok=True)
    name = archive.name

    def check(names):
        _check_targets(_top_names(names, name), dest, archive, overwrite)

    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.extract-"))
    try:
        if name.endswith(".7z"):
            _extract_7z(archive, tmp, check)
        elif zipfile.is_zipfile(archive):
            try:
                with zipfile.ZipFile(archive) as zf:
                    members = _check_zip(zf, name)
                    check([m.filename for m in members])
                    bad = zf.testzip()
                    if bad is not None:
                        raise ValueError(f"{name} is corrupt: member {bad!r} fails its CRC check")
                    zf.extractall(tmp, members=members)
            except (zipfile.BadZipFile, EOFError) as err:
                raise ValueError(f"{name} is corrupt or truncated: {err}") from None
            except OSError as err:
                if isinstance(err, FileExistsError):
                    raise
                raise ValueError(f"{name} is corrupt or truncated: {err}") from None
        else:
            try:
                with tarfile.open(archive, "r:*") as tf:
                    members = _check_tar(tf, name)
                    check([m.name for m in members])
                    tf.extractall(tmp, members=members, filter="data")
            except (tarfile.TarError, EOFError) as err:
                raise ValueError(f"{name} is corrupt, truncated or not a zip/tar/7z archive: {err}") from None
            except OSError as err:
                if isinstance(err, FileExistsError):
                    raise
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
