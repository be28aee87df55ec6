"""regkit.checkpoint and regkit.files: atomic writes, integrity, clear refusals."""

import os
import time

import pytest
import torch

from regkit import files
from regkit.checkpoint import load_checkpoint, load_model, rng_state, save_checkpoint, set_rng_state


def test_round_trip_keeps_tensors_and_plain_data(tmp_path):
    state = {"w": torch.arange(6.0).view(2, 3), "epoch": 3, "name": "x", "nested": {"lr": 1e-3}}
    save_checkpoint(state, tmp_path / "c.pt")
    back = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(back["w"], state["w"]) and back["epoch"] == 3 and back["nested"] == {"lr": 1e-3}
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]  # no temp file left behind


def test_flipped_bytes_are_caught(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"w": torch.zeros(4096)}, path)
    data = bytearray(path.read_bytes())
    mid = len(data) // 2  # inside the tensor payload
    for i in range(64):
        data[mid + i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupted|not a plain weights file"):
        load_checkpoint(path)


def test_empty_and_junk_files_are_refused_clearly(tmp_path):
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="refusing to load checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_plain_state_dict_files_still_load(tmp_path):
    m = torch.nn.Linear(3, 2)
    torch.save(m.state_dict(), tmp_path / "plain.pt")
    m2 = load_model(torch.nn.Linear(3, 2), tmp_path / "plain.pt")
    assert torch.equal(m.weight, m2.weight)


def test_wrong_architecture_names_the_model(tmp_path):
    save_checkpoint({"model": torch.nn.Linear(3, 2).state_dict()}, tmp_path / "m.pt")
    with pytest.raises(ValueError, match="does not fit this Linear"):
        load_model(torch.nn.Linear(4, 2), tmp_path / "m.pt")


def test_stale_temp_files_are_removed_on_the_next_write(tmp_path):
    stale = tmp_path / ".tmp-abc.pt"
    stale.write_bytes(b"half a checkpoint")
    old = time.time() - 2 * files.STALE_AFTER_S
    os.utime(stale, (old, old))
    fresh = tmp_path / ".tmp-inflight.pt"  # a write in progress elsewhere: kept
    fresh.write_bytes(b"")
    save_checkpoint({"a": torch.ones(1)}, tmp_path / "c.pt")
    assert not stale.exists() and fresh.exists()


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"a": torch.ones(2)}, path)
    with pytest.raises(Exception):
        save_checkpoint({"bad": lambda: 0}, path)  # lambdas cannot be pickled
    assert torch.equal(load_checkpoint(path)["a"], torch.ones(2))
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]


def test_rng_state_round_trip():
    import random

    import numpy as np

    s = rng_state()
    a = (torch.rand(3), np.random.rand(2), random.random())
    set_rng_state(s)
    b = (torch.rand(3), np.random.rand(2), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_atomic_write_text_and_bad_mode(tmp_path):
    with files.atomic_write(tmp_path / "a.json", "w") as f:
        f.write("{}")
    assert (tmp_path / "a.json").read_text() == "{}"
    assert oct((tmp_path / "a.json").stat().st_mode & 0o777) == "0o644"
    with pytest.raises(ValueError, match="mode"):
        with files.atomic_write(tmp_path / "b", "a"):
            pass
