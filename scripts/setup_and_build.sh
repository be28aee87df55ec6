#!/usr/bin/env bash
# Set up everything on a fresh machine and build the rendered book (offline).
#   bash scripts/setup_and_build.sh      ->  _build/html/index.html
# Creates .venv with the exact pins of requirements.txt, installs regkit from this checkout, adds
# the Debian packages the tests and the data appendix use when apt is available (Fashion-MNIST,
# Chromium and its driver), then builds the book from the committed, executed chapters.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$(date +%s)
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .

apt_packages="dataset-fashion-mnist chromium chromium-driver"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=""
    for p in $apt_packages; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
else
    echo "note: not root or no apt-get; install '$apt_packages' yourself for the full test suite" >&2
fi
installed=$(date +%s)
echo "setup: $((installed - start)) s, virtual environment $(du -sh .venv | cut -f1)"

rm -rf _build/html
.venv/bin/jupyter-book build . --warningiserror --nitpick --keep-going
echo "book: $(( $(date +%s) - installed )) s -> _build/html/index.html"
