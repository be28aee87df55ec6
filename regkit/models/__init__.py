"""Learned registration models; importing this package registers them with :func:`regkit.register`.

:func:`pretrained` returns a trained model that ships with regkit (:func:`pretrained_names`).
"""

from . import air, dirnet, gpereg, sasnet, transmorph, voxelmorph  # noqa: F401  (registers methods)
from .zoo import pretrained, pretrained_info, pretrained_names

__all__ = ["pretrained", "pretrained_names", "pretrained_info"]
