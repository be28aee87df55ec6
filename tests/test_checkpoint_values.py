"""regkit.checkpoint: the file format, every refusal's exact message, map_location, strictness and
the RNG state fields."""

import hashlib
import io
import random

import numpy as np
import pytest
import torch

from regkit import checkpoint as ck


def test_the_file_holds_the_payload_and_its_digest(tmp_path):
    state = {"w": torch.arange(3.0), "n": 2}
    ck.save_checkpoint(state, tmp_path / "c.pt")
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    assert sorted(raw) == ["format", "payload", "sha256"] and raw["format"] == "regkit-checkpoint-v1"
    data = raw["payload"].numpy().tobytes()
    assert raw["payload"].dtype == torch.uint8 and raw["sha256"] == hashlib.sha256(data).hexdigest()
    inner = torch.load(io.BytesIO(data), weights_only=True)
    assert torch.equal(inner["w"], state["w"]) and inner["n"] == 2


def _wrapped(tmp_path, **changes):
    ck.save_checkpoint({"w": torch.ones(2)}, tmp_path / "c.pt")
    raw = torch.load(tmp_path / "c.pt", weights_only=True)
    raw.update(changes)
    torch.save(raw, tmp_path / "c.pt")
    return tmp_path / "c.pt"


@pytest.mark.parametrize("changes", [{"payload": None}, {"payload": torch.zeros(3)}])
def test_a_missing_payload_is_named(tmp_path, changes):
    path = _wrapped(tmp_path, **changes)
    with pytest.raises(ValueError) as info:
        ck.load_checkpoint(path)
    assert str(info.value) == f"checkpoint {str(path)!r} is damaged: its payload is missing"


def test_a_wrong_digest_is_named(tmp_path):
    path = _wrapped(tmp_path, sha256="0" * 64)
    with pytest.raises(ValueError) as info:
        ck.load_checkpoint(path)
    assert str(info.value) == (
        f"checkpoint {str(path)!r} is corrupted: the SHA-256 of its contents does not match the one stored when it "
        "was written; write it again (or restore a copy)"
    )


def test_a_payload_that_is_not_a_weights_file_is_refused(tmp_path):
    junk = b"junk"
    path = _wrapped(tmp_path, payload=torch.frombuffer(bytearray(junk), dtype=torch.uint8),
                    sha256=hashlib.sha256(junk).hexdigest())
    with pytest.raises(ValueError) as info:
        ck.load_checkpoint(path)
    try:
        torch.load(io.BytesIO(junk), weights_only=True)
    except Exception as err:     # the detail names the loader's own error, first line only
        detail = f"{type(err).__name__}: {str(err).splitlines()[0]}"
    assert str(info.value) == (f"refusing to load checkpoint {str(path)!r}: it is not a plain weights file "
                               f"(torch.load with weights_only=True failed: {detail})")


class _Executable:
    """Stands for any object whose unpickling could run code."""


def test_a_valid_digest_does_not_let_code_through(tmp_path):
    """A payload pickling an arbitrary object, with a correct digest, is still refused."""
    buf = io.BytesIO()
    torch.save({"w": torch.ones(1), "obj": _Executable()}, buf)
    data = buf.getvalue()
    path = _wrapped(tmp_path, payload=torch.frombuffer(bytearray(data), dtype=torch.uint8),
                    sha256=hashlib.sha256(data).hexdigest())
    with pytest.raises(ValueError, match="it is not a plain weights file"):
        ck.load_checkpoint(path)
    torch.save({"obj": _Executable()}, tmp_path / "plain.pt")
    for where in ("cpu", "meta"):
        with pytest.raises(ValueError, match="it is not a plain weights file"):
            ck.load_checkpoint(tmp_path / "plain.pt", map_location=where)


def test_missing_empty_and_junk_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        ck.load_checkpoint(tmp_path / "missing.pt")
    assert str(info.value) == f"checkpoint not found: {tmp_path / 'missing.pt'}"
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError) as info:
        ck.load_checkpoint(tmp_path / "empty.pt")
    assert str(info.value) == f"refusing to load checkpoint {str(tmp_path / 'empty.pt')!r}: the file is empty (0 bytes)"
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError) as info:
        ck.load_checkpoint(tmp_path / "junk.pt")
    assert str(info.value).startswith(
        f"refusing to load checkpoint {str(tmp_path / 'junk.pt')!r}: it is not a plain weights file "
        "(torch.load with weights_only=True failed: UnpicklingError: Weights only load failed.")
    assert str(info.value).endswith(")") and "\n" not in str(info.value)


def test_refusal_detail_is_the_first_line_or_the_type():
    two = ck._refuse("p.pt", RuntimeError("first line\nsecond line"))
    assert str(two) == ("refusing to load checkpoint 'p.pt': it is not a plain weights file "
                        "(torch.load with weights_only=True failed: RuntimeError: first line)")
    empty = ck._refuse("p.pt", KeyError())
    assert str(empty).endswith("failed: KeyError)")


def test_map_location_applies_to_wrapped_and_plain_files(tmp_path):
    ck.save_checkpoint({"w": torch.ones(2)}, tmp_path / "c.pt")
    torch.save({"w": torch.ones(2)}, tmp_path / "plain.pt")
    for name in ("c.pt", "plain.pt"):
        assert ck.load_checkpoint(tmp_path / name)["w"].device.type == "cpu"
        assert ck.load_checkpoint(tmp_path / name, map_location="meta")["w"].device.type == "meta"


def test_load_model_nested_plain_strict_and_map_location(tmp_path):
    src = torch.nn.Linear(3, 2)
    ck.save_checkpoint({"model": src.state_dict(), "epoch": 4}, tmp_path / "nested.pt")
    ck.save_checkpoint(src.state_dict(), tmp_path / "flat.pt")
    for name in ("nested.pt", "flat.pt"):
        got = ck.load_model(torch.nn.Linear(3, 2), tmp_path / name)
        assert torch.equal(got.weight, src.weight) and torch.equal(got.bias, src.bias)
    ck.save_checkpoint({"model": {"weight": src.weight.detach()}}, tmp_path / "part.pt")
    with pytest.raises(ValueError) as info:
        ck.load_model(torch.nn.Linear(3, 2), tmp_path / "part.pt")
    assert str(info.value) == (
        f"checkpoint {str(tmp_path / 'part.pt')!r} does not fit this Linear: Error(s) in loading state_dict for "
        "Linear: (was it trained with another width or architecture?)"
    )
    partial = ck.load_model(torch.nn.Linear(3, 2), tmp_path / "part.pt", strict=False)
    assert torch.equal(partial.weight, src.weight)
    on_meta = ck.load_model(torch.nn.Linear(3, 2, device="meta"), tmp_path / "nested.pt", map_location="meta")
    assert on_meta.weight.device.type == "meta"
    # a dict whose "model" entry is not a dict is loaded as the state dict itself
    ck.save_checkpoint({"weight": src.weight.detach(), "bias": src.bias.detach()}, tmp_path / "flat2.pt")
    assert torch.equal(ck.load_model(torch.nn.Linear(3, 2), tmp_path / "flat2.pt").bias, src.bias)


def test_rng_state_fields_and_a_cached_gaussian():
    """NumPy's state keeps its cached Gaussian (``has_gauss``, ``cached``) and Python's its
    ``gauss_next``: after a restore, the next normal draws repeat too."""
    np.random.seed(5)
    random.seed(5)
    np.random.normal()
    random.gauss(0, 1)                   # both now hold a cached second Gaussian
    s = ck.rng_state()
    assert sorted(s) == ["numpy", "python", "torch"]
    kind, keys, pos, has_gauss, cached = s["numpy"]
    assert kind == "MT19937" and keys.dtype == torch.int64 and keys.numel() == 624
    assert isinstance(pos, int) and has_gauss == 1 and isinstance(cached, float)
    assert isinstance(s["python"], list) and isinstance(s["python"][1], list)
    before = (np.random.normal(), random.gauss(0, 1), torch.randn(2), np.random.randint(0, 1 << 30))
    ck.set_rng_state(s)
    after = (np.random.normal(), random.gauss(0, 1), torch.randn(2), np.random.randint(0, 1 << 30))
    assert before[0] == after[0] and before[1] == after[1] and torch.equal(before[2], after[2]) and before[3] == after[3]
    assert np.random.get_state()[1].dtype == np.uint32
    # the state survives a checkpoint (plain data only)
    ck.set_rng_state(s)
    buf = io.BytesIO()
    torch.save(s, buf)
    ck.set_rng_state(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert np.random.normal() == before[0]


def test_load_model_forwards_map_location(tmp_path, monkeypatch):
    seen = []
    real = ck.load_checkpoint

    def spy(path, map_location="cpu"):
        seen.append(map_location)
        return real(path, map_location)

    monkeypatch.setattr(ck, "load_checkpoint", spy)
    ck.save_checkpoint({"model": torch.nn.Linear(2, 1).state_dict()}, tmp_path / "m.pt")
    ck.load_model(torch.nn.Linear(2, 1), tmp_path / "m.pt")
    ck.load_model(torch.nn.Linear(2, 1, device="meta"), tmp_path / "m.pt", map_location="meta")
    assert seen == ["cpu", "meta"]


@pytest.mark.parametrize("available, initialised, kept", [
    (True, True, True), (True, False, False), (False, True, False), (False, False, False)])
def test_rng_state_keeps_the_cuda_generators_only_when_cuda_is_in_use(monkeypatch, available, initialised, kept):
    """The CUDA branch on a CPU machine, with the CUDA calls stood in for: the generators are read
    only when CUDA is available *and* initialised (reading them would initialise it)."""
    gens = [torch.tensor([1, 2, 3], dtype=torch.uint8)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialised)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: gens)
    s = ck.rng_state()
    assert sorted(s) == (["cuda", "numpy", "python", "torch"] if kept else ["numpy", "python", "torch"])
    if kept:
        assert s["cuda"] is gens


@pytest.mark.parametrize("in_state, available, restored", [
    (True, True, True), (True, False, False), (False, True, False)])
def test_set_rng_state_restores_the_cuda_generators_when_it_can(monkeypatch, in_state, available, restored):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: calls.append(states))
    s = ck.rng_state()
    if in_state:
        s["cuda"] = [torch.tensor([7, 8], dtype=torch.uint8), torch.tensor([9], dtype=torch.uint8)]
    ck.set_rng_state(s)
    if restored:
        assert len(calls) == 1 and [t.tolist() for t in calls[0]] == [[7, 8], [9]]
        assert all(t.device.type == "cpu" for t in calls[0])
    else:
        assert calls == []
