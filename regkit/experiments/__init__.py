"""Reproduced experiments: the papers' tables and the "does it register" controls.

- :mod:`regkit.experiments.tables` -- one module per reproduced table, behind one registry.
- :mod:`regkit.experiments.controls` -- controls and structural tests for any method.
- :mod:`regkit.experiments.provenance` -- results files with their provenance.
- :mod:`regkit.experiments.status` -- the reproduction-status page, from ``results/*.json``.
- :mod:`regkit.experiments.cli` -- ``python -m regkit``.

Every table scores methods through :mod:`regkit.evaluation`, and reads the papers' numbers from
:mod:`regkit.papers`. Submodules are imported on demand, so importing this package stays light.
"""
