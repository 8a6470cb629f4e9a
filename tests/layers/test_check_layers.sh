#!/bin/sh
# The layer check must fail on what it is there to catch: runs
# check_layers.sh over small made-up trees and expects its verdicts. TAP.
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mk() { # mk TREE FILE CONTENT
    mkdir -p "$tmp/$1/$(dirname "$2")"
    printf '%s\n' "$3" > "$tmp/$1/$2"
}
readme='```layers
core:
proto: core
provider: core proto
```'
verdict() { ANTIGW_SRCDIR=$tmp/$1 sh "$here/check_layers.sh" | grep -c '^not ok'; }
echo "1..5"
n=0
check() { # check DESCRIPTION EXPECTED-FAILURES TREE
    n=$((n + 1))
    got=$(verdict "$3")
    if [ "$got" = "$2" ]; then echo "ok $n - $1"; else echo "not ok $n - $1 (got $got failures, want $2)"; fi
}
mk good lib/README "$readme"
mk good lib/core/a.h '#include "core/b.h"'
mk good lib/proto/p.c '#include "core/a.h"
#include "proto/p.h"
#include "ac-config.h"
#include <stdio.h>'
mk good lib/provider/x.c '#include "proto/p.h"'
check "a tree that follows its layers passes" 0 good
cp -r "$tmp/good" "$tmp/up"
mk up lib/proto/q.c '#include "provider/x.h"'
check "an include against the layering fails" 1 up
cp -r "$tmp/good" "$tmp/bare"
mk bare lib/core/c.c '  #  include "json.h"'
check "an include without its folder fails" 1 bare
cp -r "$tmp/good" "$tmp/app"
mk app lib/provider/y.c '#include "../../fcgi-app/app.h"'
check "an include of an app header fails" 1 app
cp -r "$tmp/good" "$tmp/extra"
mk extra lib/stray/s.c '#include "core/a.h"'
check "a folder the layers block does not name fails" 1 extra
