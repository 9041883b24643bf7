#!/usr/bin/env bash
# Summarises training runs for docs/quality.md: for each group of run directories (one group per
# configuration, several seeds), the final report's validation and test Jaccard per run, the
# test mean +- half-range, the ISIC 2018 thresholded JA, the median seconds per epoch, and a PNG
# of the validation Jaccard per epoch of every run (gnuplot).
# usage: tools/quality_table.sh OUT.png LABEL=RUN[,RUN...] [LABEL=RUN[,RUN...]]...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 OUT.png LABEL=RUN[,RUN...]..." >&2; exit 2; }
out=$1; shift
field() { # field FILE SPLIT COLUMN-NAME: that split's value in final.csv
    awk -F, -v want="$2" -v col="$3" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        $1 == want { print $c }' "$1"
}
echo "| configuration | val JA (per run) | test JA (per run) | **test JA mean ± half-range** | test ISIC 2018 thr. JA mean | median s/epoch (per run) |"
echo "|---|---|---|---|---|---|"
plots=() g=0
for group in "$@"; do
    g=$((g + 1)) k=0
    label=${group%%=*}
    IFS=, read -r -a runs <<< "${group#*=}"
    val=() test=() thr=() secs=()
    for r in "${runs[@]}"; do
        [ -f "$r/final.csv" ] || { echo "$r/final.csv: missing (the run has not finished)" >&2; exit 1; }
        val+=("$(field "$r/final.csv" val JA)")
        test+=("$(field "$r/final.csv" test JA)")
        thr+=("$(field "$r/final.csv" test thresholded_JA)")
        secs+=("$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "seconds") c = i; next }
                     { print $c }' "$r/metrics.csv" | sort -g | awk '{ a[NR] = $1 }
                     END { print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }')")
        k=$((k + 1))
        plots+=("'$r/metrics.csv' using 1:6 with linespoints lc $g pt $k title '$label $(basename "$r")'")
    done
    stats=$(printf '%s\n' "${test[@]}" | awk '{ s += $1; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
        END { printf "%.3f ± %.3f", s / NR, (hi - lo) / 2 }')
    thr_mean=$(printf '%s\n' "${thr[@]}" | awk '{ s += $1 } END { printf "%.3f", s / NR }')
    fmt() { printf '%.3f\n' "$@" | paste -sd/ -; }
    echo "| $label | $(fmt "${val[@]}") | $(fmt "${test[@]}") | **$stats** | $thr_mean | $(printf '%.1f\n' "${secs[@]}" | paste -sd/ -) |"
done
command -v gnuplot >/dev/null || { echo "gnuplot missing: no $out" >&2; exit 0; }
plot=$(IFS=,; echo "${plots[*]}")
gnuplot <<GP
set terminal pngcairo noenhanced size 900,520
set output '$out'
set datafile separator ','
set key bottom right
set xlabel 'epoch'
set ylabel 'validation Jaccard (threshold 0.5, no TTA)'
set yrange [0.4:0.9]
set grid
plot $plot
GP
echo "wrote $out" >&2
