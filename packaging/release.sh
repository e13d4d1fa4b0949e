#!/usr/bin/env bash
# One release: dist/ (or $DIST_DIR) gets the wheel, the sdist, the one-file binary for
# linux-x86_64, the .deb and SHA256SUMS; prints each artifact with its size.
# Usage: packaging/release.sh   (from anywhere, on linux-x86_64 with python3 and dpkg-deb)
set -euo pipefail
cd "$(dirname "$0")/.."
dist=${DIST_DIR:-dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' synthbox/__init__.py)
binary=synthbox-$version-linux-x86_64
rm -f "$dist"/synthbox-"$version"* "$dist"/synthbox_"$version"_*.deb "$dist/synthbox" \
  "$dist/SHA256SUMS"

# The wheel is built from the sdist, so a file missing from the sdist fails here.
venv=build/release-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip 'build>=1.0'
"$venv/bin/python" -m build --outdir "$dist" . >"$dist/.python-build.log" 2>&1 \
  || { cat "$dist/.python-build.log" >&2; exit 1; }
rm -f "$dist/.python-build.log"

DIST_DIR="$dist" bash packaging/build.sh >/dev/null
mv "$dist/synthbox" "$dist/$binary"
DIST_DIR="$dist" SYNTHBOX_BINARY="$dist/$binary" bash packaging/build-deb.sh >/dev/null

artifacts=("synthbox-$version-py3-none-any.whl" "synthbox-$version.tar.gz" "$binary"
           "synthbox_${version}_amd64.deb")
(cd "$dist" && sha256sum "${artifacts[@]}" > SHA256SUMS)
echo "release $version in $dist:"
for name in "${artifacts[@]}" SHA256SUMS; do
  size=$(stat -c %s "$dist/$name")
  awk -v name="$name" -v size="$size" \
    'BEGIN { printf "  %-34s %9d bytes %5.1f MB\n", name, size, size / 1e6 }'
done
