"""regkit.files: atomic writes (names, permissions, failures), stale temp files, SHA-256 digests."""

import hashlib
import os
import stat
import time

import pytest

from regkit import files


def _age(path, seconds):
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_remove_stale_temps_removes_only_old_temp_files(tmp_path):
    old, new, other = tmp_path / ".tmp-old.part", tmp_path / ".tmp-new.part", tmp_path / "old.part"
    for p in (old, new, other):
        p.write_bytes(b"x")
    _age(old, 2 * 3600)
    _age(other, 2 * 3600)
    _age(new, 60)
    assert files.remove_stale_temps(tmp_path) == [old]
    assert not old.exists() and new.exists() and other.exists()
    # the age limit is the argument: 60 s old is stale beyond 30 s, not beyond 90 s
    assert files.remove_stale_temps(tmp_path, older_than_s=90) == []
    assert files.remove_stale_temps(str(tmp_path), older_than_s=30) == [new]
    assert files.STALE_AFTER_S == 3600.0 and files.TEMP_PREFIX == ".tmp-"


def test_atomic_write_names_its_temp_file_and_sets_permissions(tmp_path):
    dest = tmp_path / "sub" / "dir" / "a.bin"        # folders are created
    with files.atomic_write(dest, suffix=".xyz") as f:
        temps = [p.name for p in dest.parent.iterdir()]
        assert len(temps) == 1 and temps[0].startswith(".tmp-") and temps[0].endswith(".xyz")
        assert not dest.exists()
        f.write(b"data")
    assert dest.read_bytes() == b"data" and [p.name for p in dest.parent.iterdir()] == ["a.bin"]
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    with files.atomic_write(tmp_path / "b.txt", "w", perms=0o600) as f:
        f.write("text")
    assert (tmp_path / "b.txt").read_text() == "text" and stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    with files.atomic_write(tmp_path / "c.bin", perms=None) as f:   # mkstemp's private file kept
        f.write(b"c")
    assert stat.S_IMODE((tmp_path / "c.bin").stat().st_mode) == 0o600
    (tmp_path / "e").mkdir()
    with files.atomic_write(tmp_path / "e" / "d.bin") as f:
        names = [p.name for p in (tmp_path / "e").iterdir()]
    assert len(names) == 1 and names[0].startswith(".tmp-") and names[0].endswith(".part")


def test_atomic_write_leaves_the_old_file_when_the_block_fails(tmp_path):
    dest = tmp_path / "a.txt"
    dest.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_write(dest, "w") as f:
            f.write("new")
            raise KeyboardInterrupt
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_atomic_write_cleans_stale_temps_of_its_folder_and_refuses_other_modes(tmp_path):
    stale = tmp_path / ".tmp-killed.part"
    stale.write_bytes(b"x")
    _age(stale, 2 * 3600)
    with files.atomic_write(tmp_path / "a.bin") as f:
        f.write(b"a")
    assert not stale.exists()
    for mode in ("a", "r", "w+"):
        with pytest.raises(ValueError) as info:
            with files.atomic_write(tmp_path / "b.bin", mode):
                pass
        assert str(info.value) == f"mode must be 'wb' or 'w', got {mode!r}"
    assert not (tmp_path / "b.bin").exists()


def test_sha256sum_of_small_and_multi_chunk_files(tmp_path):
    (tmp_path / "a").write_bytes(b"hi")
    assert files.sha256sum(tmp_path / "a") == hashlib.sha256(b"hi").hexdigest()
    big = bytes(range(256)) * ((3 << 20) // 256 + 7)   # three 1 MiB chunks and a bit
    (tmp_path / "big").write_bytes(big)
    assert files.sha256sum(str(tmp_path / "big")) == hashlib.sha256(big).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert files.sha256sum(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_a_temp_file_exactly_at_the_age_limit_is_kept(tmp_path, monkeypatch):
    """Stale means older than the limit: a temp file exactly ``older_than_s`` old stays."""
    p = tmp_path / ".tmp-x.part"
    p.write_bytes(b"x")
    monkeypatch.setattr(files.time, "time", lambda: 10_000.0)
    monkeypatch.setattr(files.os.path, "getmtime", lambda path: 10_000.0 - 3600.0)
    assert files.remove_stale_temps(tmp_path) == [] and p.exists()
    assert files.remove_stale_temps(tmp_path, older_than_s=3599.5) == [p] and not p.exists()
