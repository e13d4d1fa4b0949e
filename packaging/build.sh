#!/usr/bin/env bash
# Build dist/synthbox, the single executable, from a clean virtual environment.
# Usage: packaging/build.sh    (from anywhere; DIST_DIR=... writes elsewhere than dist/;
#        prints the file's size at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${DIST_DIR:-dist}
venv=build/venv
# PyInstaller's cache, which --clean empties, is per user by default: a build in another
# checkout at the same time lost its cached libraries halfway. Keep it in this checkout.
export PYINSTALLER_CONFIG_DIR=$PWD/build/pyinstaller-config
rm -rf "$venv" build/synthbox "$dist/synthbox"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q . 'pyinstaller>=6.0,<7'
"$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --distpath "$dist" --workpath build/pyinstaller synthbox.spec
size=$(stat -c %s "$dist/synthbox")
echo "built $dist/synthbox: $((size / 1024 / 1024)) MB ($size bytes)"
