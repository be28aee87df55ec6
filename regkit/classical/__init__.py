"""Classical (optimisation-based and feature-based) registration methods.

Importing this package registers its methods with :func:`regkit.register`.
"""

from . import demons, optical_flow, reference, sift_ransac, syn  # noqa: F401  (registers methods)
