#!/bin/bash
# The gateway against the thinnest real gateway (lighttpd + libfcgi + libcurl
# pass-through, "proxy") on one machine, in one run, as ratios. `make bench`
# runs it with the binaries of the build tree; README "Benchmark" says more.
#
# It starts the gateway the way deploy/quickstart.sh does (deploy/pool.sh for
# antigw-fcgi and antigw-admin, lighttpd on deploy/lighttpd.conf) on its own
# port, in tenant mode with a key made through the admin API that has QPM and
# TPM limits (high enough never to refuse, so the limiter runs on every call
# without shaping the load), with an OpenAI-type and an Anthropic-type
# provider on the bench mock upstream (127.0.0.1:9901). Then:
#   1. the harness's run.sh (BENCH_HARNESS): the mock, the proxy and the
#      gateway side by side, with the same pool size (P processes x T
#      threads) for proxy and gateway: req/s at 64 connections, p50/p99 at
#      one connection, one stream's timing, STREAMS concurrent streams;
#      then req/s at 64 connections of both again with wrk, lighttpd and
#      the mock pinned (taskset), lighttpd on wrk's CPU and on another;
#   2. its own workloads against the gateway: an OpenAI client calling a
#      model of the Anthropic provider (conversion) against the same call
#      passed through, BIG_STREAMS (1024) concurrent streams through
#      lighttpd, and the RSS of every antigw-fcgi process after a warm-up
#      and after RSS_REQUESTS (100,000) more calls;
# and prints the table of ratios with their targets (for the two throughput
# ratios also each round's, as the rounds alternate the two sides).
#
# Environment:
#   BENCH_HARNESS   the harness directory (run.sh, up.sh, mock-upstream.c,
#                   post.lua, streams.py); required
#   BENCH_WORK      work files (default /tmp/antigw-bench); the gateway's state
#                   goes to $BENCH_WORK/antigw (wiped at each run)
#   ANTIGW_BIN, ANTIGW_ADMIN_BIN   the binaries (make bench sets them)
#   BENCH_PORT      the gateway's port (default 8190)
#   P, T            processes and threads per process, for proxy and gateway (2, 64)
#   ROUNDS, DUR     rounds (medians are reported) and seconds per measurement (3, 5s)
#   STREAMS, BIG_STREAMS, RSS_REQUESTS   256, 1024, 100000
#   BENCH_PERF      a file name: after the table, `perf record` (cpu-clock, call
#                   graphs) samples the gateway's processes through one more
#                   passthrough run and `perf report`'s top entries are printed
# The ports of the harness (9901, 8181, 8182) must be free.
#
# `bench.sh up` only starts the gateway as above and leaves it running, for
# profiling by hand: its URL and tenant key go to $BENCH_WORK/gateway (two
# lines); the harness's up.sh starts the proxy and the mock beside it, and
# `bench.sh down` stops the gateway.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
: "${BENCH_HARNESS:?set BENCH_HARNESS to the harness directory (run.sh, up.sh, ...)}"
BENCH_HARNESS=$(cd "$BENCH_HARNESS" && pwd)
export BENCH_WORK=${BENCH_WORK:-/tmp/antigw-bench}
ANTIGW_BIN=${ANTIGW_BIN:-$top/build/fcgi-app/antigw-fcgi}
ANTIGW_ADMIN_BIN=${ANTIGW_ADMIN_BIN:-$top/build/admin-cgi/antigw-admin}
PORT=${BENCH_PORT:-8190}
export P=${P:-2}
T=${T:-64}
ROUNDS=${ROUNDS:-3} DUR=${DUR:-5s}
STREAMS=${STREAMS:-256} BIG_STREAMS=${BIG_STREAMS:-1024} RSS_REQUESTS=${RSS_REQUESTS:-100000}
ADMIN_KEY=agw-bench-admin-0123456789abcdef0123456789
MOCK_PORT=9901

die() { printf 'bench: %s\n' "$*" >&2; exit 1; }
for f in run.sh up.sh down.sh mock-upstream.c post.lua streams.py; do
    [ -e "$BENCH_HARNESS/$f" ] || die "$BENCH_HARNESS has no $f"
done
for b in lighttpd spawn-fcgi multiwatch wrk python3 curl gcc; do
    command -v $b >/dev/null || die "missing $b (apt-get install lighttpd spawn-fcgi multiwatch wrk curl)"
done
[ "${1:-}" = down ] || { [ -x "$ANTIGW_BIN" ] && [ -x "$ANTIGW_ADMIN_BIN" ]; } || die "build first: $ANTIGW_BIN"
ulimit -n 16384 2>/dev/null || ulimit -n 4096

gw=$BENCH_WORK/antigw
url=http://127.0.0.1:$PORT
mkdir -p "$BENCH_WORK"
export ANTIGW_VAR=$gw ANTIGW_BIND=127.0.0.1 ANTIGW_PORT=$PORT ANTIGW_CONFIG=$gw/antigw.cfg

pool() { ANTIGW_BIN=$ANTIGW_BIN ANTIGW_PROCESSES=$P ANTIGW_THREADS=$T "$top/deploy/pool.sh" "$@"; }
admin_pool() {
    ANTIGW_POOL_NAME=admin ANTIGW_BIN=$ANTIGW_ADMIN_BIN ANTIGW_PROCESSES=1 ANTIGW_THREADS=4 \
        "$top/deploy/pool.sh" "$@"
}
mock_pid=
mock_start() { # mock-upstream arguments
    [ "$BENCH_WORK/mock" -nt "$BENCH_HARNESS/mock-upstream.c" ] ||
        gcc -O2 -Wall -o "$BENCH_WORK/mock" "$BENCH_HARNESS/mock-upstream.c" || die "mock build"
    "$BENCH_WORK/mock" -p $MOCK_PORT "$@" 2>>"$BENCH_WORK/mock.log" &
    mock_pid=$!
    sleep 0.3
}
mock_stop() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null; mock_pid=; }
gateway_stop() {
    [ -f "$gw/run/lighttpd.pid" ] && kill "$(cat "$gw/run/lighttpd.pid")" 2>/dev/null
    sleep 0.3
    [ -d "$gw/run" ] && { pool stop >/dev/null; admin_pool stop >/dev/null; }
    return 0
}
cleanup() { mock_stop; gateway_stop; }
case ${1:-} in
down) gateway_stop; exit 0 ;;
up | '') ;;
*) die "usage: bench.sh [up|down]" ;;
esac
trap cleanup EXIT

# ---- the gateway ----
gateway_stop
rm -rf "$gw"
mkdir -p "$gw/run" "$gw/log" "$gw/www"
chmod 700 "$gw"
od -An -N32 -tx1 /dev/urandom | tr -d ' \n' > "$gw/secret.key"
chmod 600 "$gw/secret.key"
# The shipped example (its log level and limits) with tenant mode on, no
# health probes (the bench mock serves no model list) and the two providers.
sed -e "s|^  admin_key = \"\";|  admin_key = \"$ADMIN_KEY\";|" \
    -e 's|^  enabled = false;|  enabled = true;|' \
    -e 's|^  health_check_enabled = true;|  health_check_enabled = false;|' \
    -e "s|^  threads = [0-9]*;|  threads = $T;|" \
    -e '/^providers = ( );$/d' "$top/antigw.cfg.example" > "$ANTIGW_CONFIG"
cat >> "$ANTIGW_CONFIG" <<EOF
secrets: { key_file = "secret.key"; };
providers = (
  { name = "bench-openai"; type = "openai"; base_url = "http://127.0.0.1:$MOCK_PORT/v1";
    api_key = "sk-bench"; models = [ "gpt-*" ]; },
  { name = "bench-anthropic"; type = "anthropic"; base_url = "http://127.0.0.1:$MOCK_PORT";
    api_key = "sk-bench"; models = [ "claude-*" ]; }
);
EOF
"$ANTIGW_BIN" --check-config -c "$ANTIGW_CONFIG" >/dev/null || die "configuration refused"
pool start >/dev/null || die "pool did not start"
admin_pool start >/dev/null || die "admin pool did not start"
lighttpd -f "$top/deploy/lighttpd.conf" || die "lighttpd did not start (port $PORT free?)"
for _ in $(seq 50); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$url/health" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] || die "gateway not answering on $url/health ($code)"
key=$(curl -s -H "Authorization: Bearer $ADMIN_KEY" \
    -d '{"name":"bench","qpm":100000000,"tpm":1000000000}' "$url/admin/keys" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])') || die "no tenant key"
if [ "${1:-}" = up ]; then
    printf '%s\n%s\n' "$url" "$key" > "$BENCH_WORK/gateway"
    trap - EXIT
    echo "gateway on $url, its URL and tenant key in $BENCH_WORK/gateway"
    exit 0
fi
gateway_pids() { # one per line
    local mw
    mw=$(cat "$gw/run/pool.pid")
    tr -s ' ' '\n' < "/proc/$mw/task/$mw/children" | grep .
}

# ---- 1. the harness: proxy and gateway side by side ----
harness_out=$BENCH_WORK/harness-table.txt
GATEWAY_URL=$url GATEWAY_KEY=$key ROUNDS=$ROUNDS DUR=$DUR STREAMS=$STREAMS T1=$T T2=$T \
    "$BENCH_HARNESS/run.sh" | tee "$harness_out"
# The harness's raw files of this run: w1-<target>-<round>.txt (64 connections).
harness_raw=$(ls -1td "$BENCH_WORK"/results/*/ | head -n 1)
row() { awk -v n="$1" '$1 == n' "$harness_out"; }
field() { row "$1" | awk -v i="$2" '{print $i}'; }
gap() { row "$1" | sed -n 's/.*max_gap_ms=\([0-9.]*\).*/\1/p'; }
med() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print 0}'; }
ratio() { # a b: b / a, or "-" when either is missing
    python3 -c 'import sys
try:
    print("%.2f" % (float(sys.argv[2]) / float(sys.argv[1])))
except (ValueError, ZeroDivisionError):
    print("-")' "$1" "$2"
}
# wrk counts an error answer as a request: a run with any answer other than
# 2xx prints no figure (and says why), and the caller stops the benchmark.
answered_ok() { # wrk's output on stdin: its FIELD-th word of the line matching PATTERN
    awk -v pat="$1" -v f="$2" '$0 ~ pat {v = $f} /Non-2xx/ {bad = $NF}
        END {if (bad) print "bench: " bad " answers were not 2xx" > "/dev/stderr"; else print v}'
}

# ---- 1b. the same throughput with the event loops pinned ----
# On few CPUs an unpinned run's ratio turns on whether the kernel puts wrk on
# the CPU of the gateway's lighttpd (README "Benchmarks"). Here wrk runs on
# CPU 0 and the mock on the last CPU, each lighttpd first on wrk's CPU, then
# on the last; the pools are left to the kernel.
PLACED=
last=$(($(nproc) - 1))
if [ "$last" -ge 1 ] && command -v taskset >/dev/null; then
    placed_rps() { # url key lighttpd-pid cpu: req/s of one run at 64 connections
        taskset -pc "$4" "$3" >/dev/null || die "taskset on lighttpd $3"
        WRK_HEADERS="Authorization: Bearer $2" taskset -c 0 wrk -t1 -c64 -d"$DUR" \
            -s "$BENCH_HARNESS/post.lua" "$1/v1/chat/completions" | answered_ok 'Requests/sec' 2
    }
    T=$T "$BENCH_HARNESS/up.sh" >/dev/null 2>&1 || die "the harness's up.sh failed"
    proxy_lighttpd=$(tail -n 1 "$BENCH_WORK/pids")
    gw_lighttpd=$(cat "$gw/run/lighttpd.pid")
    taskset -pc "$last" "$(head -n 1 "$BENCH_WORK/pids")" >/dev/null # the mock
    for cpu in 0 "$last"; do
        p=() g=()
        for _ in $(seq "$ROUNDS"); do
            p+=("$(placed_rps http://127.0.0.1:8182 sk-test "$proxy_lighttpd" "$cpu")")
            g+=("$(placed_rps "$url" "$key" "$gw_lighttpd" "$cpu")")
            [ -n "${p[-1]}" ] && [ -n "${g[-1]}" ] || { "$BENCH_HARNESS/down.sh"; die "a pinned run had error answers"; }
        done
        pm=$(printf '%s\n' "${p[@]}" | med) gm=$(printf '%s\n' "${g[@]}" | med)
        PLACED="$PLACED  lighttpd on CPU $cpu: proxy $pm, gateway $gm req/s (gateway/proxy $(ratio "$pm" "$gm"))
"
    done
    taskset -pc "0-$last" "$gw_lighttpd" >/dev/null
    "$BENCH_HARNESS/down.sh"
fi

# ---- 2. the project's own workloads ----
rps() { # body
    WRK_HEADERS="Authorization: Bearer $key" WRK_BODY=$1 wrk -t1 -c64 -d"$DUR" \
        -s "$BENCH_HARNESS/post.lua" "$url/v1/chat/completions" | answered_ok 'Requests/sec' 2
}
PASS_BODY='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'
CONV_BODY='{"model":"claude-3-5-haiku-20241022","messages":[{"role":"user","content":"Hello!"}]}'
mock_start
s=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" -d "$CONV_BODY" \
    "$url/v1/chat/completions")
[ "$s" = 200 ] || die "a converted call answered $s"
# Rounds of one measurement each side, in the order ABBA...: a machine that
# speeds up or slows down through a round then favours neither side.
pass=() conv=()
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) = 1 ]; then
        pass+=("$(rps "$PASS_BODY")")
        conv+=("$(rps "$CONV_BODY")")
    else
        conv+=("$(rps "$CONV_BODY")")
        pass+=("$(rps "$PASS_BODY")")
    fi
    [ -n "${pass[-1]}" ] && [ -n "${conv[-1]}" ] || die "a throughput run had error answers"
done
# Each round's ratio beside the median's: the rounds alternate the two
# sides, so their spread shows how far one run's median can land.
round_ratios() { # "a1 a2 ..." "b1 b2 ...": ratio a_i b_i, comma-separated
    local a b i out=()
    read -ra a <<< "$1"
    read -ra b <<< "$2"
    for i in "${!a[@]}"; do
        out+=("$(ratio "${a[i]}" "${b[i]:-}")")
    done
    (IFS=,; echo "${out[*]}")
}
harness_rps() { # target: its req/s at 64 connections, round by round
    for r in $(seq "$ROUNDS"); do
        awk '/Requests\/sec/ {print $2}' "$harness_raw/w1-$1-$r.txt" 2>/dev/null || echo -
    done | paste -sd' '
}
# At one connection, round by round: wrk's 99th percentile and its slowest
# call, in µs. wrk corrects for coordinated omission: after each call slower
# than twice the mean call time it adds made-up samples, one per mean call
# time of its length. At a 200-µs mean, 1 % of a 5-s round is about 250
# samples, and one 7-ms stall (a CPU taken from the machine by its host,
# which both sides suffer) adds 34: a handful of such stalls moves a round's
# p99 by hundreds of µs.
harness_c1() { # target, "99%" or "Max"
    for r in $(seq "$ROUNDS"); do
        awk -v what="$2" '
            function us(v) {
                if (v ~ /us$/) return v + 0
                if (v ~ /ms$/) return v * 1000
                if (v ~ /s$/) return v * 1000000
                return v
            }
            what == "Max" && $1 == "Latency" && $2 ~ /^[0-9]/ {print us($4)}
            what == "99%" && $1 == "99%" {print us($2)}' \
            "$harness_raw/w2-$1-$r.txt" 2>/dev/null || echo -
    done | paste -sd' '
}
c1_rounds() { # target: "p99/slowest" per round
    paste -d/ <(harness_c1 "$1" 99% | tr ' ' '\n') <(harness_c1 "$1" Max | tr ' ' '\n') |
        paste -sd' '
}
PASS_ROUNDS=$(round_ratios "$(harness_rps proxy)" "$(harness_rps gateway)")
P99_ROUNDS=$(round_ratios "$(harness_c1 proxy 99%)" "$(harness_c1 gateway 99%)")
CONV_ROUNDS=$(round_ratios "${pass[*]}" "${conv[*]}")
PASS_RPS=$(printf '%s\n' "${pass[@]}" | med)
CONV_RPS=$(printf '%s\n' "${conv[@]}" | med)
# The conversion figure is the median of the rounds' ratios, each of two
# measurements taken back to back: the speed of the whole machine moves from
# one round to the next, and the ratio of the two sides' medians can set one
# round's passthrough against another round's conversion (seen: rounds of
# 0.98, 0.76 and 1.01, medians' ratio 0.81).
CONV_RATIO=$(tr ',' '\n' <<< "$CONV_ROUNDS" | med)

# RSS: a warm-up, then RSS_REQUESTS more calls, the RSS of each process before and after.
rss() { # field of /proc/PID/status: VmRSS, or RssAnon (heap and stacks, without mapped files)
    for p in $(gateway_pids); do awk -v f="$1:" '$1 == f {print $2}' "/proc/$p/status"; done |
        paste -sd' '
}
growth() { # before after: the largest growth of one process, in %
    python3 -c 'import sys
b, a = [int(x) for x in sys.argv[1].split()], [int(x) for x in sys.argv[2].split()]
print("%.2f" % max((y - x) * 100.0 / x for x, y in zip(b, a)))' "$1" "$2"
}
calls() { # n: wrk until n calls were answered
    local left=$1 n
    while [ "$left" -gt 0 ]; do
        n=$(WRK_HEADERS="Authorization: Bearer $key" wrk -t1 -c64 -d3s -s "$BENCH_HARNESS/post.lua" \
            "$url/v1/chat/completions" | answered_ok 'requests in' 1)
        [ "${n:-0}" -gt 0 ] || die "no answers, or error answers, while counting calls"
        left=$((left - n))
    done
}
calls 20000
pids_before=$(gateway_pids | paste -sd' ')
rss_before=$(rss VmRSS) anon_before=$(rss RssAnon)
calls "$RSS_REQUESTS"
pids_after=$(gateway_pids | paste -sd' ')
rss_after=$(rss VmRSS) anon_after=$(rss RssAnon)
[ "$pids_before" = "$pids_after" ] || die "a gateway process was replaced during the RSS run"
RSS_GROWTH=$(growth "$rss_before" "$rss_after")
ANON_GROWTH=$(growth "$anon_before" "$anon_after")

if [ -n "${BENCH_PERF:-}" ]; then
    perf record -q -F 2000 -e cpu-clock -g -p "$(gateway_pids | paste -sd,)" -o "$BENCH_PERF" \
        -- sleep 6 2>"$BENCH_WORK/perf.log" &
    perf_pid=$!
    sleep 0.5
    rps "$PASS_BODY" >/dev/null
    wait $perf_pid
fi
mock_stop

mock_start -n 20 -d 5000
BIG=$(python3 "$BENCH_HARNESS/streams.py" "$url" /v1/chat/completions "$BIG_STREAMS" \
    "Authorization: Bearer $key")
mock_stop
BIG_OK=$(sed -n 's/.*complete=\([0-9]*\).*/\1/p' <<< "$BIG")

# ---- the table ----
echo
echo "gateway: $P processes x $T threads, tenant mode (key with QPM/TPM limits); proxy: the same pool size"
echo "own workloads, req/s round by round: passthrough ${pass[*]}, conversion ${conv[*]}" \
    "(medians' ratio $(ratio "$PASS_RPS" "$CONV_RPS")); $BIG_STREAMS streams: $BIG"
[ -n "$PLACED" ] && printf 'req/s at 64 connections, wrk on CPU 0 and the mock on CPU %s (medians of %s):\n%s' \
    "$last" "$ROUNDS" "$PLACED"
echo "at 1 connection, round by round, wrk's p99 / slowest call in µs:" \
    "proxy $(c1_rounds proxy), gateway $(c1_rounds gateway)"
echo "RSS kB per process after the warm-up: $rss_before; after $RSS_REQUESTS more calls: $rss_after"
echo "  of which anonymous (heap, stacks; without mapped files such as the database's WAL index):"
echo "  $anon_before; after: $anon_after (largest growth $ANON_GROWTH %)"
STREAMS=$STREAMS python3 - "$(field proxy 2)" "$(field gateway 2)" "$(field proxy 3)" "$(field gateway 3)" \
    "$(field proxy 4)" "$(field gateway 4)" "$CONV_RATIO" "$(gap proxy)" \
    "$(gap gateway)" "${BIG_OK:-0}" "$BIG_STREAMS" "$RSS_GROWTH" "$PASS_ROUNDS" "$CONV_ROUNDS" \
    "$P99_ROUNDS" <<'EOF'
import os, sys
v = sys.argv[1:]
def f(x):
    try:
        return float(x)
    except ValueError:
        return float("nan")
pass_rounds, conv_rounds, p99_rounds = v[12], v[13], v[14]
(prps, grps, pp50, gp50, pp99, gp99, conv, pgap, ggap, ok, n, growth) = map(f, v[:12])
rows = [
    ("req/s c=64, passthrough, tenant key (vs proxy)", grps / prps, ">= 0.90", grps / prps >= 0.9,
     pass_rounds),
    ("p50 at c=1 (vs proxy)", gp50 / pp50, "<= 1.20", gp50 / pp50 <= 1.2, ""),
    ("p99 at c=1 (vs proxy)", gp99 / pp99, "<= 1.50", gp99 / pp99 <= 1.5, p99_rounds),
    ("conversion req/s (vs passthrough, paired)", conv, ">= 0.85", conv >= 0.85, conv_rounds),
    ("%s streams: largest gap (vs proxy)" % os.environ["STREAMS"], ggap / pgap, "<= 1.50", ggap / pgap <= 1.5, ""),
    ("%d streams through lighttpd: complete" % n, ok / n, "= 1.00", ok == n, ""),
    ("RSS growth per process, % after warm-up", growth, "<= 1.00", growth <= 1.0, ""),
]
print("%-48s %8s %8s  %-4s %s" % ("figure", "value", "target", "met", "each round"))
for name, val, target, met, rounds in rows:
    print("%-48s %8.2f %8s  %-4s %s" % (name, val, target, "yes" if met else "NO", rounds))
EOF
if [ -n "${BENCH_PERF:-}" ]; then
    echo
    echo "profile of one passthrough run ($BENCH_PERF), self time:"
    perf report -i "$BENCH_PERF" --no-children --sort symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -25
fi
