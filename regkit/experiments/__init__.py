"""Reproduced experiments: the papers' tables, run through the one registration protocol.

- :mod:`regkit.experiments.evaluate` -- loop methods over a pair data set through
  :func:`regkit.register`; per-pair metrics, means and standard deviations.
- :mod:`regkit.experiments.paper_numbers` -- the papers' published numbers, as data.

Submodules are imported on demand (``from regkit.experiments import evaluate``), so importing
this package stays light.
"""
