"""The model zoo: trained weights that ship with regkit; ``pretrained(name)`` returns a model ready to register.

The files live in ``regkit/models/weights/`` beside ``manifest.json``, which records for each
name the file, its SHA-256, the model class and constructor arguments, and how the weights were
made (command, git revision, profile, data, steps). ``weights/README.md`` says the same for
people.

Convention
----------
A pretrained model is returned in eval mode on the requested device; its weights are checked
against the manifest's SHA-256 and loaded with ``weights_only=True``. Every registered learned
method accepts the name directly: ``regkit.register(m, f, method="air", model="air-mnist")``.

Example
-------
>>> from regkit.models import pretrained_names
>>> isinstance(pretrained_names(), list)
True
"""

from __future__ import annotations

import importlib
import json
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..checkpoint import load_model
from ..files import sha256sum

__all__ = ["pretrained", "pretrained_names", "pretrained_info", "reload_manifest", "WEIGHTS_DIR"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
"""Folder of the shipped weights and their ``manifest.json``."""


@lru_cache(maxsize=1)
def _manifest() -> dict:
    path = WEIGHTS_DIR / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def reload_manifest() -> None:
    """Read ``manifest.json`` again on next use (after weights were exported or the folder changed)."""
    _manifest.cache_clear()


def pretrained_names() -> list[str]:
    """Names of the trained models that ship with regkit, sorted."""
    return sorted(_manifest())


def pretrained_info(name: str) -> dict:
    """The manifest entry of ``name``: file, sha256, model class and config, and its provenance."""
    manifest = _manifest()
    if name not in manifest:
        raise ValueError(f"name must be one of {sorted(manifest)}, got {name!r}")
    return dict(manifest[name])


def pretrained(name: str, device="cpu") -> nn.Module:
    """A trained model that ships with regkit, in eval mode.

    Parameters
    ----------
    name : str
        One of :func:`pretrained_names`, e.g. ``"air-mnist"``.
    device : torch.device or str

    Returns
    -------
    nn.Module in eval mode on ``device``.

    Raises
    ------
    ValueError
        For an unknown name, or a weights file whose SHA-256 differs from the manifest's.
    """
    entry = pretrained_info(name)
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"the weights of {name!r} are missing from the installed package: {entry['file']}")
    digest = sha256sum(path)
    if digest != entry["sha256"]:
        raise ValueError(f"the weights file of {name!r} is corrupted: SHA-256 {digest}, expected {entry['sha256']}")
    module_name, cls_name = entry["model_class"].rsplit(".", 1)
    if not module_name.startswith("regkit.models."):
        raise ValueError(f"manifest entry {name!r} names a class outside regkit.models: {entry['model_class']!r}")
    cls = getattr(importlib.import_module(module_name), cls_name)
    with torch.device("cpu"):   # built on the CPU whatever the caller's default device, then moved
        model = cls(**entry.get("model_config", {}))
    load_model(model, path)
    return model.to(device).eval()
