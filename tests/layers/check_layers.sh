#!/bin/sh
# Checks that every #include "..." in lib/ follows the layering that lib/README
# declares in its `layers` block: a folder includes its own headers and those
# of the folders it names, nothing else (never fcgi-app/ or admin-cgi/).
# Prints TAP: one case per folder. ANTIGW_SRCDIR points at the source tree.
src=${ANTIGW_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
readme=$src/lib/README
rules=$(sed -n '/^```layers$/,/^```$/p' "$readme" | sed '1d;$d')
if [ -z "$rules" ]; then
    echo "1..1"
    echo "not ok 1 - lib/README has no layers block"
    exit 0
fi
folders=$(printf '%s\n' "$rules" | sed 's/:.*//')
n=0
for f in $folders; do n=$((n + 1)); done
# A folder on disk that the block does not name is a failure too.
for d in "$src"/lib/*/; do
    d=$(basename "$d")
    printf '%s\n' "$folders" | grep -qx "$d" || n=$((n + 1))
done
echo "1..$n"
i=0
for f in $folders; do
    i=$((i + 1))
    allowed="$f $(printf '%s\n' "$rules" | sed -n "s/^$f:\(.*\)/\1/p")"
    bad=""
    for file in "$src"/lib/"$f"/*.c "$src"/lib/"$f"/*.h; do
        [ -f "$file" ] || continue
        for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file"); do
            [ "$inc" = ac-config.h ] && continue
            dir=${inc%%/*}
            ok=0
            case $inc in */*) for a in $allowed; do [ "$dir" = "$a" ] && ok=1; done ;; esac
            [ $ok = 1 ] || bad="$bad lib/$f/$(basename "$file")->$inc"
        done
    done
    if [ -z "$bad" ]; then
        echo "ok $i - lib/$f includes only: $allowed"
    else
        echo "not ok $i - lib/$f includes against the layering:$bad"
    fi
done
for d in "$src"/lib/*/; do
    d=$(basename "$d")
    printf '%s\n' "$folders" | grep -qx "$d" && continue
    i=$((i + 1))
    echo "not ok $i - lib/$d is not in lib/README's layers block"
done
exit 0
