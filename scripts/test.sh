#!/usr/bin/env bash
# Run every test: unit tests, doctests of the library, and nbval over every chapter.
#   bash scripts/test.sh [extra pytest arguments]
# Run scripts/setup_and_build.sh once first. Chapters run in the quick profile, as committed.
set -euo pipefail
cd "$(dirname "$0")/.."
export REGKIT_PROFILE=quick
unset MPLBACKEND
exec .venv/bin/python -m pytest tests regkit --doctest-modules --nbval-lax book "$@"
