#!/usr/bin/env bash
# `meson install` into a temporary prefix (meson test 'install'): the installed binary runs from
# there with its embedded kernels (a 32x32 predict on the first device, from another directory),
# the man page is installed and renders, and it names every subcommand and every environment
# variable the sources read (as do README.md's table and include/oclseg/env.h).
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
(cd "$work" && "$root/bin/oclseg" synth --out data --train 4 --test 1 >/dev/null &&
 "$root/bin/oclseg" train --data data --out run --size 32 --batch 2 --val-fraction 0 --epochs 1 --quiet >/dev/null &&
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
# every switch is read in one place (src/runtime/env.c into include/oclseg/env.h's struct), and
# the man page and the README's table name each of them
outside=$(grep -rlE '\bgetenv\(' src | grep -v '^src/runtime/env.c$' || true)
[ -z "$outside" ] || { echo "FAIL: getenv outside src/runtime/env.c: $outside"; missing=1; }
vars=$(grep -hoE 'getenv\("[A-Z_0-9]+"\)' src/runtime/env.c | sed 's/getenv("\(.*\)")/\1/' | sort -u)
[ -n "$vars" ] || { echo "FAIL: no getenv(\"NAME\") in src/runtime/env.c"; missing=1; }
for var in $vars; do
    grep -q "$var" "$work/man.txt" || { echo "FAIL: $var (read by src/) not in oclseg.1"; missing=1; }
    grep -q "\`$var\`" README.md || { echo "FAIL: $var (read by src/) not in README's table"; missing=1; }
    grep -q "$var" include/oclseg/env.h || { echo "FAIL: $var not documented in oclseg/env.h"; missing=1; }
done
[ $missing = 0 ] && echo PASS
