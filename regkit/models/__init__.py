"""Learned registration models; importing this package registers them with :func:`regkit.register`."""

from . import air, dirnet, gpereg, sasnet, transmorph, voxelmorph  # noqa: F401  (registers methods)
