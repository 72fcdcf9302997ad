#!/usr/bin/env bash
# Flatten an ISCE2 stack tree into one folder of symlinks to its coregistered SLC VRTs,
# as the course did:
#     find Coarse -type f -name "*.slc.vrt" -exec ln -sf {} SLC_FINE_LOCAL/ \;
# but with absolute link targets (a relative `find` path makes dangling links), names
# with spaces, hidden temporary folders skipped, and the files that are not part of a
# coregistered stack left out:
#   - stripmapStack's SLC/ holds every date *before* coregistration (only merged/SLC/,
#     topsStack's coregistered output, is taken);
#   - undated files, such as topsStack's burst_01.slc.vrt, are single bursts;
#   - a tree with two stacks (coregSLC/Coarse and coregSLC/Fine) is refused: pass one.
#
# GDAL resolves a symlinked VRT to its target before applying relativeToVRT="1", so the
# linked .slc.vrt still finds its raw .slc beside the real file.
set -euo pipefail

me=flatten_isce_tree.sh

usage() {
    cat <<'EOF'
usage: flatten_isce_tree.sh SRC [FLAT]

Link every dated *.slc.vrt / *.slc.full.vrt found under SRC (an ISCE2 tree such as
coregSLC/Coarse, merged/SLC, a project root, or a labkit synth stack) into the flat
folder FLAT (default: SLC_FINE_LOCAL), one symlink per date. Existing links of the same
name in FLAT are replaced. Says what it linked and what it skipped (uncoregistered SLC/
dates, undated burst files); exits 1 when nothing was linked, 2 on bad arguments or when
SRC holds more than one stack.

ISCE2's coregSLC/Coarse and coregSLC/Fine hold the secondary dates only; the reference
date is SLC/<REF>/<REF>.slc. To include it, link its VRT by hand:
  ln -s "$PWD/SLC/<REF>/<REF>.slc.vrt" SLC_FINE_LOCAL/

example:
  data_prep/flatten_isce_tree.sh coregSLC/Coarse SLC_FINE_LOCAL
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
    echo "$me: error: source folder '$src' does not exist" >&2
    exit 2
fi
if [ -e "$flat" ] && [ ! -d "$flat" ]; then
    echo "$me: error: '$flat' exists and is not a folder" >&2
    exit 2
fi
src_abs=$(cd -- "$src" && pwd -P)
flat_abs=$(cd -- "$(dirname -- "$flat")" 2>/dev/null && pwd -P)/$(basename -- "$flat")
if [ "$src_abs" = "$flat_abs" ]; then
    echo "$me: error: SRC and FLAT are the same folder" >&2
    exit 2
fi

date_re='(^|[^0-9])((19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01]))([^0-9]|$)'

first_date() { # the first YYYYMMDD in $1 (the acquisition date), or nothing
    if [[ $1 =~ $date_re ]]; then
        printf '%s' "${BASH_REMATCH[2]}"
    fi
}

uncoregistered() { # true if a folder named SLC (not merged/SLC) is on the path under SRC
    local rel=$1 prev part
    prev=$(basename -- "$src_abs")
    IFS=/ read -r -a parts <<<"$rel"
    for part in "${parts[@]}"; do
        if [ "$part" = SLC ] && [ "$prev" != merged ]; then
            return 0
        fi
        prev=$part
    done
    return 1
}

files=() dates=() stacks=() skipped=0
while IFS= read -r -d '' vrt; do
    rel=${vrt#"$src_abs"/}
    name=${vrt##*/}
    date=$(first_date "$name")
    if [ -z "$date" ]; then
        echo "$me: skipped $rel: no YYYYMMDD date in the name (a single burst?)" >&2
        skipped=$((skipped + 1))
        continue
    fi
    if uncoregistered "$rel"; then
        echo "$me: skipped $rel: SLC/ holds the dates before coregistration" >&2
        skipped=$((skipped + 1))
        continue
    fi
    dir=${vrt%/*}
    stack=$dir
    if [ "$dir" != "$src_abs" ] && [ "$(first_date "${dir##*/}")" = "$date" ]; then
        stack=${dir%/*} # DATE/DATE.slc.vrt: the stack is the folder of the DATE folders
    fi
    files+=("$vrt") dates+=("$date") stacks+=("$stack")
done < <(find "$src_abs" -mindepth 1 \( -name '.*' -o -path "$flat_abs" \) -prune \
    -o ! -type d \( -name '*.slc.vrt' -o -name '*.slc.full.vrt' \) -print0 | LC_ALL=C sort -z)

if [ "${#files[@]}" -gt 0 ]; then
    distinct=$(printf '%s\n' "${stacks[@]}" | LC_ALL=C sort | uniq -c)
    if [ "$(printf '%s\n' "$distinct" | wc -l)" -gt 1 ]; then
        listed=$(printf '%s\n' "$distinct" | while read -r count folder; do
            rel=${folder#"$src_abs"}
            printf '%s (%s dates), ' "${rel#/}" "$count"
        done)
        echo "$me: error: '$src' holds more than one stack: ${listed%, }; pass one of them" \
            "as SRC (coregSLC/Coarse and Fine hold the secondary dates only)" >&2
        exit 2
    fi
fi

mkdir -p -- "$flat"
n=0
linked=""
seen=/
for i in "${!files[@]}"; do
    vrt=${files[$i]}
    name=${vrt##*/}
    case $seen in
        *"/$name/"*)
            echo "$me: skipped ${vrt#"$src_abs"/}: another $name is linked" >&2
            skipped=$((skipped + 1))
            continue
            ;;
    esac
    seen="$seen$name/"
    if [ -e "$flat_abs/$name" ] && [ ! -L "$flat_abs/$name" ]; then
        echo "$me: skipped ${vrt#"$src_abs"/}: $flat/$name is a real file, not replaced" >&2
        skipped=$((skipped + 1))
        continue
    fi
    ln -sfn -- "$vrt" "$flat_abs/$name"
    n=$((n + 1))
    linked="$linked ${dates[$i]}"
done

if [ "$n" -eq 0 ]; then
    echo "$me: error: no dated, coregistered *.slc.vrt or *.slc.full.vrt under '$src'" \
        "($skipped skipped)" >&2
    exit 1
fi
echo "linked $n SLC VRTs into $flat:$linked; skipped $skipped"
