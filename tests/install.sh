#!/usr/bin/env bash
# `meson install` into a temporary prefix (meson test 'install'): the installed binary runs from
# there with its embedded kernels (a 32x32 predict on the first device, from another directory),
# the man page is installed and renders, and it names every subcommand and every environment
# variable the sources read.
set -euo pipefail
cd "$(dirname "$0")/.."
builddir=${BUILDDIR:?BUILDDIR must name the meson build directory}
bin=${OCLSEG_BIN:?OCLSEG_BIN must name the oclseg binary}
work=$(mktemp -d /tmp/oclseg-install-XXXXXX)
trap 'rm -rf "$work"' EXIT
meson install -C "$builddir" --destdir "$work/root" --no-rebuild >/dev/null
prefix=$(meson introspect "$builddir" --buildoptions |
         /usr/bin/python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
mandir=$(meson introspect "$builddir" --buildoptions |
         /usr/bin/python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "mandir"))')
root=$work/root$prefix
[ -x "$root/bin/oclseg" ] || { echo "FAIL: $root/bin/oclseg not installed"; exit 1; }
page=$work/root$prefix/$mandir/man1/oclseg.1
[ -f "$page" ] || page=$work/root$mandir/man1/oclseg.1
[ -f "$page" ] || { echo "FAIL: oclseg.1 not installed under $work/root"; exit 1; }
# runs from the prefix, away from the source tree (kernels embedded, nothing read from cl/)
(cd "$work" && "$root/bin/oclseg" --help >/dev/null && "$root/bin/oclseg" --version)
(cd "$work" && "$root/bin/oclseg" synth --out data --train 2 --test 1 >/dev/null &&
 "$root/bin/oclseg" train --data data --out run --size 32 --batch 2 --epochs 1 --quiet >/dev/null &&
 "$root/bin/oclseg" predict --weights run/weights.safetensors --size 32 --out pred \
     data/ISBI2016_ISIC_Part1_Test_Data >/dev/null && ls pred/*_mask.png >/dev/null)
if command -v man >/dev/null; then
    MANWIDTH=100 man --warnings -l "$page" 2>"$work/manwarn" >"$work/man.txt"
    if [ -s "$work/manwarn" ]; then echo "FAIL: man warnings:"; cat "$work/manwarn"; exit 1; fi
else
    cp "$page" "$work/man.txt"
fi
missing=0
for cmd in $("$bin" --help | awk '/^commands:/ {on=1; next} on && NF {print $1}'); do
    grep -q "oclseg $cmd" "$work/man.txt" || { echo "FAIL: subcommand $cmd not in oclseg.1"; missing=1; }
done
for var in $(grep -rhoE 'getenv\("[A-Z_0-9]+"\)' src | sed 's/getenv("\(.*\)")/\1/' | sort -u); do
    grep -q "$var" "$work/man.txt" || { echo "FAIL: $var (read by src/) not in oclseg.1"; missing=1; }
done
[ $missing = 0 ] && echo PASS
