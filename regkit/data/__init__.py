"""Data sets of registration pairs: MNIST / Fashion-MNIST, FIRE-Reg-256, HPatches-Reg-256.

Every set is a :class:`~regkit.data.pairs.PairDataset` of dicts with ``moving`` and ``fixed``
float32 ``(1, H, W)`` in [0, 1], plus the ground truth its source knows (``disp`` in pixels as
a pull field on the fixed grid, ``landmarks_moving`` / ``landmarks_fixed`` in pixels (x, y),
masks, ``label``, ``frame``). Same seed, same data. Batch items with :func:`collate_pairs`, or
ask a set for many at once (``dataset.batch(indices, device)``) or for all of them, held as
tensors (``dataset.materialize(device)``). ``dataset.source`` says where the pairs come from.
"""

from . import appearance, calibration, fire_proxy, fundus
from .calibration import PAPER_UNREGISTERED, unregistered_row
from .download import download, extract, sha256sum
from .fire import download_fire, fire_pairs, fire_reg256, prepare_fire
from .fundus import retina_photo, synth_fundus
from .hpatches import hpatches_reg256, synth_texture
from .mnist import DataNotFoundError, load_images, mnist_pairs
from .pairs import PairDataset, TensorPairs, collate_pairs

__all__ = [
    "mnist_pairs",
    "load_images",
    "fire_reg256",
    "fire_pairs",
    "download_fire",
    "prepare_fire",
    "hpatches_reg256",
    "synth_fundus",
    "retina_photo",
    "synth_texture",
    "unregistered_row",
    "PAPER_UNREGISTERED",
    "DataNotFoundError",
    "PairDataset",
    "TensorPairs",
    "collate_pairs",
    "download",
    "extract",
    "sha256sum",
    "appearance",
    "calibration",
    "fire_proxy",
    "fundus",
]
