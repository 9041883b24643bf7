#!/usr/bin/env bash
# Downloads the ISIC 2016 Part 1 (lesion segmentation) data and checks the file counts.
#
#   datasets/get_isic2016.sh [--dest DIR]    download + unzip into DIR (default datasets/isic2016)
#   datasets/get_isic2016.sh --verify DIR    only count the files of an existing copy
#
# Expected: 900 training images + 900 masks, 379 test images + 379 masks. The data is ISIC
# challenge data (CC BY-NC); cite Gutman et al., "Skin Lesion Analysis toward Melanoma
# Detection: A Challenge at ISBI 2016" (arXiv:1605.01397).
set -euo pipefail

BASE_URL="https://isic-challenge-data.s3.amazonaws.com/2016"
ZIPS=(ISBI2016_ISIC_Part1_Training_Data ISBI2016_ISIC_Part1_Training_GroundTruth
      ISBI2016_ISIC_Part1_Test_Data ISBI2016_ISIC_Part1_Test_GroundTruth)
EXPECT_TRAIN=900
EXPECT_TEST=379

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

# count DIR GLOB_SUFFIX: number of regular files in the one subfolder of DIR named *GLOB_SUFFIX
# whose names match PATTERN.
count_files() {
    local root=$1 folder_suffix=$2 pattern=$3 dirs
    dirs=("$root"/*"$folder_suffix")
    if [ ! -d "${dirs[0]}" ]; then
        echo "missing"
        return
    fi
    find "${dirs[0]}" -maxdepth 1 -type f -iname "$pattern" | wc -l | tr -d ' '
}

verify() {
    local root=$1 ok=1 n
    if [ ! -d "$root" ]; then
        echo "error: $root is not a folder" >&2
        return 2
    fi
    echo "ISIC 2016 Part 1 file counts in $root:"
    check() { # label folder_suffix pattern expected
        n=$(count_files "$root" "$2" "$3")
        if [ "$n" = "$4" ]; then
            printf '  %-28s %5s  ok\n' "$1" "$n"
        else
            printf '  %-28s %5s  expected %s\n' "$1" "$n" "$4"
            ok=0
        fi
    }
    check "training images (*.jpg)" Training_Data "*.jpg" "$EXPECT_TRAIN"
    check "training masks" Training_GroundTruth "*_segmentation.png" "$EXPECT_TRAIN"
    check "test images (*.jpg)" Test_Data "*.jpg" "$EXPECT_TEST"
    check "test masks" Test_GroundTruth "*_segmentation.png" "$EXPECT_TEST"
    if [ "$ok" = 1 ]; then
        echo "complete"
        return 0
    fi
    echo "INCOMPLETE: counts differ from the official release (re-run the download, or use the" \
         "partial copy knowingly)" >&2
    return 1
}

download() {
    local dest=$1 name
    for tool in curl unzip; do
        command -v "$tool" >/dev/null || { echo "error: $tool is required" >&2; exit 2; }
    done
    mkdir -p "$dest/zips"
    for name in "${ZIPS[@]}"; do
        if [ ! -s "$dest/zips/$name.zip" ]; then
            echo "downloading $name.zip"
            curl -fL --retry 3 -o "$dest/zips/$name.zip.part" "$BASE_URL/$name.zip"
            mv "$dest/zips/$name.zip.part" "$dest/zips/$name.zip"
        fi
        if [ ! -d "$dest/$name" ]; then
            echo "unzipping $name.zip"
            unzip -q -o "$dest/zips/$name.zip" -d "$dest"
        fi
    done
    verify "$dest"
}

DEST="$(cd "$(dirname "$0")" && pwd)/isic2016"
case "${1:-}" in
    -h|--help) usage 0 ;;
    --verify) [ $# -eq 2 ] || usage 2; verify "$2" ;;
    --dest) [ $# -eq 2 ] || usage 2; download "$2" ;;
    "") download "$DEST" ;;
    *) usage 2 ;;
esac
