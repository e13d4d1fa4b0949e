#!/usr/bin/env bash
# Build dist/synthbox_<version>_amd64.deb from the one-file binary, with dpkg-deb.
# Usage: packaging/build-deb.sh   (from anywhere; DIST_DIR=... writes elsewhere than dist/,
#        SYNTHBOX_BINARY=... packages that binary instead of $DIST_DIR/synthbox, which
#        packaging/build.sh builds when it is missing; prints the file's size at the end)
#
# The package: /usr/bin/synthbox; the systemd unit (the one `synthbox install` writes,
# pointed at /usr/bin) in /lib/systemd/system; /etc/synthbox/synthbox.toml, a conffile
# with every setting explained; the synthbox system user and /var/lib/synthbox made in
# postinst; purge alone deletes the data. The maintainer scripts, changelog and
# copyright are in packaging/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dist=${DIST_DIR:-dist}
mkdir -p "$dist"
dist=$(cd "$dist" && pwd)
binary=${SYNTHBOX_BINARY:-$dist/synthbox}
if [ ! -x "$binary" ]; then
  DIST_DIR="$dist" bash packaging/build.sh
fi
binary=$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")

version=$("$binary" version | sed -n 's/^synthbox \([^ ]*\) .*/\1/p')
changelog_version=$(sed -n '1s/^synthbox (\([^)]*\)).*/\1/p' packaging/debian/changelog)
if [ "$version" != "$changelog_version" ]; then
  echo "packaging/debian/changelog starts at $changelog_version, the binary is $version:" \
       "add a changelog entry" >&2
  exit 1
fi
maintainer=$(sed -n 's/^ -- \(.*>\)  .*/\1/p' packaging/debian/changelog | head -n1)
glibc=$(dpkg-query -W -f='${Version}' libc6 | sed 's/-.*//')

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/synthbox
# The binary writes its own config and unit, exactly as `synthbox install` does.
"$binary" install --root "$work/tree" --binary "$binary" >/dev/null
install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
  "$stage/etc/synthbox" "$stage/usr/share/doc/synthbox" "$stage/usr/share/man/man1"
install -m 0755 "$binary" "$stage/usr/bin/synthbox"
sed -e 's|/usr/local/bin/synthbox|/usr/bin/synthbox|g' \
    -e 's|^# SynthBox as a systemd service. Written by `synthbox install`;|# SynthBox as a systemd service, from the synthbox package;|' \
    "$work/tree/etc/systemd/system/synthbox.service" > "$stage/lib/systemd/system/synthbox.service"
chmod 0644 "$stage/lib/systemd/system/synthbox.service"
install -m 0644 "$work/tree/etc/synthbox/synthbox.toml" "$stage/etc/synthbox/synthbox.toml"
install -m 0644 packaging/debian/copyright "$stage/usr/share/doc/synthbox/copyright"
gzip -9n -c packaging/debian/changelog > "$stage/usr/share/doc/synthbox/changelog.gz"
gzip -9n -c packaging/debian/synthbox.1 > "$stage/usr/share/man/man1/synthbox.1.gz"
chmod 0644 "$stage/usr/share/doc/synthbox/changelog.gz" "$stage/usr/share/man/man1/synthbox.1.gz"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm \
  "$stage/DEBIAN/"
install -m 0644 packaging/debian/conffiles "$stage/DEBIAN/conffiles"
installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@MAINTAINER@|$maintainer|" \
    -e "s|@INSTALLED_SIZE@|$installed_size|" \
    -e "s|@DEPENDS@|adduser, libc6 (>= $glibc), zlib1g|" \
    packaging/debian/control > "$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort \
  | xargs md5sum > DEBIAN/md5sums)
chmod 0644 "$stage/DEBIAN/md5sums"

deb=$dist/synthbox_${version}_amd64.deb
# The binary is compressed inside already: gzip costs little time and xz saves little.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)} \
  dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >/dev/null
size=$(stat -c %s "$deb")
echo "built $deb: $((size / 1024 / 1024)) MB ($size bytes)"
