r"""Checkpoints: atomic, integrity-checked save and load, and the RNG state of a run.

The models (to rebuild a network from a file, and :func:`regkit.models.pretrained`) and the
Trainer (to resume) both use this module; it sits below both.

- :func:`save_checkpoint` writes atomically (:func:`regkit.files.atomic_write`) and stores the
  SHA-256 of the serialised contents.
- :func:`load_checkpoint` loads with ``torch.load(..., weights_only=True)`` (a pickle that would
  run code is refused) and verifies the SHA-256, so flipped bytes are caught, not loaded.
- :func:`rng_state` / :func:`set_rng_state` capture and restore Python's, NumPy's and torch's
  global generators (for exact resume).

Example
-------
>>> import os, tempfile, torch
>>> with tempfile.TemporaryDirectory() as d:
...     save_checkpoint({"w": torch.ones(2)}, os.path.join(d, "a.pt"))
...     load_checkpoint(os.path.join(d, "a.pt"))["w"]
tensor([1., 1.])
"""

from __future__ import annotations

import hashlib
import io
import os
import random

import numpy as np
import torch
from torch import nn

from .files import atomic_write

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "load_model",
    "rng_state",
    "set_rng_state",
]

_FORMAT = "regkit-checkpoint-v1"


def save_checkpoint(state: dict, path) -> None:
    """Write ``state`` atomically, with the SHA-256 of its serialised contents.

    Parameters
    ----------
    state : dict
        Tensors and plain containers, numbers and strings (what ``weights_only`` loading accepts).
    path : str or PathLike
        Destination; its folder is created. A crash mid-write leaves the previous file intact.
    """
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    wrapped = {
        "format": _FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    with atomic_write(path, "wb", suffix=".pt") as f:
        torch.save(wrapped, f)


def _refuse(path: str, err: Exception) -> ValueError:
    lines = str(err).splitlines()
    detail = f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__
    return ValueError(
        f"refusing to load checkpoint {path!r}: it is not a plain weights file "
        f"(torch.load with weights_only=True failed: {detail})"
    )


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint with ``torch.load(..., weights_only=True)``, verifying its SHA-256.

    Files written by :func:`save_checkpoint` carry the digest of their contents; a mismatch (a
    corrupted or tampered file) raises ``ValueError``. Plain ``torch.save`` files (a state dict)
    load too, without that check. A checkpoint crafted to run code when unpickled is refused with
    a ``ValueError`` instead of being executed.

    Parameters
    ----------
    path : str or PathLike
    map_location : passed to ``torch.load``

    Returns
    -------
    dict (or whatever plain object the file holds)
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise ValueError(f"refusing to load checkpoint {path!r}: the file is empty (0 bytes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle.UnpicklingError for disallowed globals, RuntimeError for junk
        raise _refuse(path, err) from err
    if isinstance(state, dict) and state.get("format") == _FORMAT:
        payload = state.get("payload")
        if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
            raise ValueError(f"checkpoint {path!r} is damaged: its payload is missing")
        data = payload.numpy().tobytes()
        if hashlib.sha256(data).hexdigest() != state.get("sha256"):
            raise ValueError(
                f"checkpoint {path!r} is corrupted: the SHA-256 of its contents does not match the one "
                "stored when it was written; write it again (or restore a copy)"
            )
        try:
            return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
        except Exception as err:
            raise _refuse(path, err) from err
    if map_location != "cpu":
        state = torch.load(path, map_location=map_location, weights_only=True)
    return state


def load_model(model: nn.Module, path, map_location="cpu", strict: bool = True) -> nn.Module:
    """Load weights into ``model`` from a Trainer checkpoint (``last.pt``) or a plain state dict file.

    Parameters
    ----------
    model : nn.Module
        A model of the architecture the weights were trained with.
    path : str or PathLike
    map_location, strict : as in ``torch.load`` / ``load_state_dict``

    Returns
    -------
    The same ``model``, with the weights loaded.

    >>> import tempfile
    >>> m = torch.nn.Linear(2, 2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_checkpoint({"model": m.state_dict()}, os.path.join(d, "m.pt"))
    ...     m2 = load_model(torch.nn.Linear(2, 2), os.path.join(d, "m.pt"))
    >>> torch.equal(m.weight, m2.weight)
    True
    """
    state = load_checkpoint(path, map_location)
    nested = isinstance(state, dict) and isinstance(state.get("model"), dict)
    weights = state["model"] if nested else state
    try:
        model.load_state_dict(weights, strict=strict)
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {os.fspath(path)!r} does not fit this {type(model).__name__}: "
            f"{str(err).splitlines()[0]} (was it trained with another width or architecture?)"
        ) from err
    return model


# ----------------------------------------------------------------------------------------------
# RNG state
# ----------------------------------------------------------------------------------------------


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, (tuple, list)) else x


def rng_state() -> dict:
    """The global RNG states of torch (CPU and initialised CUDA), NumPy and Python, as plain data.

    >>> s = rng_state(); a = torch.rand(1); set_rng_state(s); bool(torch.rand(1) == a)
    True
    """
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np_state[1].astype(np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the generators captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])

