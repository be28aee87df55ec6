"""The reproduced tables, one module each, behind one registry that the CLI reads.

============================  ==========================================================
name                          module
============================  ==========================================================
``air-table1``                :mod:`~regkit.experiments.tables.air_table1`
``gpereg-table1``             :mod:`~regkit.experiments.tables.gpereg_table1`
``gpereg-table2``             :mod:`~regkit.experiments.tables.gpereg_table2`
``gpereg-table3``             :mod:`~regkit.experiments.tables.gpereg_table3`
``gpereg-ablation``           :mod:`~regkit.experiments.tables.gpereg_ablation`
``gpereg-does-it-register``   :mod:`~regkit.experiments.tables.gpereg_controls`
============================  ==========================================================

Every module has the same public names (see :mod:`regkit.experiments.tables.base`). Modules are
imported on first use, so listing the tables stays light.

>>> sorted(TABLES)[:2]
['air-table1', 'gpereg-ablation']
"""

from __future__ import annotations

import importlib
from types import ModuleType

from . import base

__all__ = ["TABLES", "get", "names", "base"]

TABLES: dict[str, str] = {
    "air-table1": "air_table1",
    "gpereg-table1": "gpereg_table1",
    "gpereg-table2": "gpereg_table2",
    "gpereg-table3": "gpereg_table3",
    "gpereg-ablation": "gpereg_ablation",
    "gpereg-does-it-register": "gpereg_controls",
}
"""Table name -> module name in this package."""


def names() -> list[str]:
    """The table names, sorted."""
    return sorted(TABLES)


def get(name: str) -> ModuleType:
    """The module of table ``name`` (imported on first use)."""
    if name not in TABLES:
        raise ValueError(f"table must be one of {names()}, got {name!r}")
    return importlib.import_module(f"{__name__}.{TABLES[name]}")
