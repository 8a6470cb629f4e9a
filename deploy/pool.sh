#!/bin/sh
# Starts and stops a pool of antigw-fcgi (or antigw-admin) processes:
# spawn-fcgi opens the socket and hands it to multiwatch, which keeps
# ANTIGW_PROCESSES children alive. Used by quickstart.sh and the integration
# tests.
#
#   pool.sh start|stop|status|reload
# Environment:
#   ANTIGW_VAR        state directory (required): run/fcgi.sock, run/pool.pid, log/fcgi.log
#   ANTIGW_POOL_NAME  "fcgi" (default) or another name, e.g. "admin": then the
#                     socket, pid file and log are run/NAME.sock, run/NAME.pid, log/NAME.log
#   ANTIGW_BIN        the antigw-fcgi (or antigw-admin) binary (required)
#   ANTIGW_CONFIG     configuration file (passed to every process)
#   ANTIGW_PROCESSES  processes in the pool (default 2)
#   ANTIGW_THREADS    threads per process (default: server.threads from the config)
#   ANTIGW_SOCKET     socket path (default $ANTIGW_VAR/run/fcgi.sock)
#   ANTIGW_STOP_WAIT  seconds to wait for in-flight requests on stop (default 30)
#   ANTIGW_SOCKET_GROUP  group owning the 0660 socket: the web server's (e.g.
#                     www-data) when it runs as another user (root only)
#
# The pool runs in a process group of its own (setsid; the pid file names its
# leader), so stop and status find every process of it, also when multiwatch
# died and left its workers serving as orphans.
set -eu

: "${ANTIGW_VAR:?ANTIGW_VAR must name the state directory}"
run=$ANTIGW_VAR/run
name=${ANTIGW_POOL_NAME:-fcgi}
sock=${ANTIGW_SOCKET:-$run/$name.sock}
if [ "$name" = fcgi ]; then pidfile=$run/pool.pid; else pidfile=$run/$name.pid; fi
log=$ANTIGW_VAR/log/$name.log

# A process that exists and is not a zombie (an exited process whose parent
# has not reaped it yet still answers kill -0).
alive() {
    [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^Z'
}

running() {
    [ -f "$pidfile" ] && alive "$(cat "$pidfile")"
}

# Every live process of the pool's process group (multiwatch and its
# workers), also after multiwatch died.
members() {
    [ -f "$pidfile" ] || return 0
    for p in $(pgrep -g "$(cat "$pidfile")" 2>/dev/null); do
        if alive "$p"; then echo "$p"; fi
    done
}

start() {
    : "${ANTIGW_BIN:?ANTIGW_BIN must name the antigw-fcgi binary}"
    if running; then
        echo "$name pool already running (pid $(cat "$pidfile"))"
        return 0
    fi
    if [ -n "$(members)" ]; then
        echo "$name pool: multiwatch is gone but workers remain; stop it first" >&2
        return 1
    fi
    mkdir -p "$run" "$ANTIGW_VAR/log"
    set -- "$ANTIGW_BIN"
    [ -n "${ANTIGW_CONFIG:-}" ] && set -- "$@" -c "$ANTIGW_CONFIG"
    [ -n "${ANTIGW_THREADS:-}" ] && set -- "$@" -t "$ANTIGW_THREADS"
    # -n keeps spawn-fcgi in the foreground (it execs multiwatch), so stderr
    # stays open and reaches the log; in fork mode it would go to /dev/null.
    group=
    [ -n "${ANTIGW_SOCKET_GROUP:-}" ] && group="-G $ANTIGW_SOCKET_GROUP"
    rm -f "$sock"
    # setsid: the pool leads its own process group (a background job of a
    # non-interactive shell is no group leader, so setsid execs in place and
    # $! is the leader's pid).
    # shellcheck disable=SC2086
    nohup setsid spawn-fcgi -n -s "$sock" -M 0660 $group -- "$(command -v multiwatch)" \
        -f "${ANTIGW_PROCESSES:-2}" -- "$@" >>"$log" 2>&1 &
    echo $! > "$pidfile"
    i=0
    while [ ! -S "$sock" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! running; then
            echo "$name pool did not start; see $log" >&2
            tail -5 "$log" >&2 || true
            return 1
        fi
        sleep 0.05
    done
}

stop() {
    if [ -z "$(members)" ]; then
        rm -f "$pidfile"
        return 0
    fi
    pgid=$(cat "$pidfile")
    # multiwatch passes a graceful stop (USR1) to its children: they finish
    # the requests in flight, then exit; multiwatch exits after them. Workers
    # whose multiwatch died get the graceful stop directly.
    if running; then
        kill -TERM "$pgid" 2>/dev/null || true
    else
        echo "$name pool: multiwatch is gone; stopping its orphaned workers" >&2
        # shellcheck disable=SC2046
        kill -USR1 $(members) 2>/dev/null || true
    fi
    i=0
    wait_max=$(( ${ANTIGW_STOP_WAIT:-30} * 10 ))
    while [ -n "$(members)" ]; do
        i=$((i + 1))
        if [ $i -gt "$wait_max" ]; then
            echo "$name pool still running after ${ANTIGW_STOP_WAIT:-30}s: killing it" >&2
            kill -KILL "-$pgid" 2>/dev/null || true  # dash: no "--"
            break
        fi
        sleep 0.1
    done
    rm -f "$pidfile" "$sock"
}

# SIGHUP to each process of the pool: it reloads its configuration file;
# requests in flight finish with the one they started with, and a file that
# does not load is refused (logged) while the old one stays. multiwatch
# itself must not get the HUP: it takes any such signal as a stop.
reload() {
    if ! running; then
        echo "$name pool is not running" >&2
        return 1
    fi
    pid=$(cat "$pidfile")
    kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || pgrep -P "$pid" || true)
    if [ -z "$kids" ]; then
        echo "$name pool has no processes to reload" >&2
        return 1
    fi
    # shellcheck disable=SC2086
    kill -HUP $kids
    echo "$name pool: reload signalled to $(echo $kids | wc -w) processes; see $log"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
reload) reload ;;
status)
    if running; then
        echo "$name pool running (pid $(cat "$pidfile"), socket $sock, $(members | wc -l) processes)"
    elif [ -n "$(members)" ]; then
        echo "$name pool broken: multiwatch is gone, orphaned workers $(members | paste -sd' ' -) still serve; run stop" >&2
        exit 1
    else
        echo "$name pool stopped"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start|stop|status|reload" >&2
    exit 2
    ;;
esac
