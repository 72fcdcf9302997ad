#!/usr/bin/env bash
# Flatten an ISCE2 stack tree (Coarse/<DATE>/<DATE>.slc.vrt ...) into one folder of
# symlinks to its *.slc.vrt files, as the course did:
#     find Coarse -type f -name "*.slc.vrt" -exec ln -sf {} SLC_FINE_LOCAL/ \;
# but with absolute link targets (a relative `find` path makes dangling links), names
# with spaces, hidden temporary folders skipped, and duplicate names reported.
#
# GDAL resolves a symlinked VRT to its target before applying relativeToVRT="1", so the
# linked .slc.vrt still finds its raw .slc beside the real file.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: flatten_isce_tree.sh SRC [FLAT]

Link every *.slc.vrt found under SRC (an ISCE2 tree such as Coarse/ or a labkit synth
stack) into the flat folder FLAT (default: SLC_FINE_LOCAL), one symlink per date.
Existing links of the same name in FLAT are replaced. Prints the number of links made.

example:
  data_prep/flatten_isce_tree.sh Coarse SLC_FINE_LOCAL
  labkit prep SLC_FINE_LOCAL intens_1024 --crop 1024,1024,0,0
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") usage >&2; exit 2 ;;
esac
if [ $# -gt 2 ]; then
    usage >&2
    exit 2
fi

src=$1
flat=${2:-SLC_FINE_LOCAL}

if [ ! -d "$src" ]; then
    echo "flatten_isce_tree.sh: error: source folder '$src' does not exist" >&2
    exit 2
fi
if [ -e "$flat" ] && [ ! -d "$flat" ]; then
    echo "flatten_isce_tree.sh: error: '$flat' exists and is not a folder" >&2
    exit 2
fi
mkdir -p -- "$flat"
src_abs=$(cd -- "$src" && pwd -P)
flat_abs=$(cd -- "$flat" && pwd -P)
if [ "$src_abs" = "$flat_abs" ]; then
    echo "flatten_isce_tree.sh: error: SRC and FLAT are the same folder" >&2
    exit 2
fi

n=0
seen=/
while IFS= read -r -d '' vrt; do
    name=${vrt##*/}
    case $seen in
        *"/$name/"*)
            echo "flatten_isce_tree.sh: warning: skipping $vrt (another $name is linked)" >&2
            continue
            ;;
    esac
    seen="$seen$name/"
    if [ -e "$flat_abs/$name" ] && [ ! -L "$flat_abs/$name" ]; then
        echo "flatten_isce_tree.sh: warning: $flat/$name is a real file, not replaced" >&2
        continue
    fi
    ln -sfn -- "$vrt" "$flat_abs/$name"
    n=$((n + 1))
done < <(find "$src_abs" -mindepth 1 \( -name '.*' -o -path "$flat_abs" \) -prune \
    -o ! -type d -name '*.slc.vrt' -print0 | LC_ALL=C sort -z)

if [ "$n" -eq 0 ]; then
    echo "flatten_isce_tree.sh: error: no *.slc.vrt files under '$src'" >&2
    exit 1
fi
echo "linked $n SLC VRTs into $flat"
