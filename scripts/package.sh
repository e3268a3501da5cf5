#!/usr/bin/env bash
# Builds the Debian package with the standard tools, from a copy of this
# working tree (its tracked and new files, no build directories) in
# build/package/, then checks it with lintian: an error or a warning fails
# (each warning is fixed, or overridden in debian/embargo.lintian-overrides
# with its reason). Installs what it needs first (scripts/deps.sh package).
#   scripts/package.sh            build/package/embargo_VERSION_ARCH.deb
# Prints the path of the .deb on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh package

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
out=build/package
src=$out/embargo-$version
rm -rf "$out"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf - | tar -xf - -C "$src"
else
  tar --exclude='./build*' --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

echo "embargo: dpkg-buildpackage -us -uc -b in $src" >&2
(cd "$src" && dpkg-buildpackage -us -uc -b) >"$out/build.log" 2>&1 ||
  { tail -n 40 "$out/build.log" >&2; echo "embargo: the package build failed ($out/build.log)" >&2; exit 1; }

deb=$(ls "$out"/embargo_"$version"_*.deb)
echo "embargo: lintian $deb" >&2
lintian --fail-on error,warning --display-level '>=warning' "$deb" >&2 ||
  { echo "embargo: lintian found errors or warnings" >&2; exit 1; }
echo "$deb"
