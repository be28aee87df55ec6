"""``python -m regkit ...``: the experiment command line (see :mod:`regkit.experiments.cli`)."""

from .experiments.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
