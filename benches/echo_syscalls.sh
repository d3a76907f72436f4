#!/usr/bin/env bash
# Syscalls per echo round trip of the gort and tokio servers of benches/echo.rs (issue 4).
#
# Usage: benches/echo_syscalls.sh [conns] [client processes] [rounds]
#   conns: connections in all (default 100); client processes: 1 (default) or more, each with
#   its share of the connections; rounds: measurements per server, alternating (default 3).
#
# The server (one worker) is pinned to CPU 0. One client process is pinned to CPU 1: client and
# server are about as fast as each other, so the server idles between bursts and calls
# epoll_wait once per burst. With 2 or more client processes, they run on both CPUs and take
# CPU 0 time from the server: the server is the bottleneck (saturated), its run queue seldom
# empties, and epoll_wait is rare. A round trip is one `sendto` of the server (an echo of 64
# bytes is one write); every syscall the server makes counts (`perf stat -e
# 'syscalls:sys_enter_*'` over 3 s of steady load, after 1.5 s of warm-up), and the server's
# CPU time (`task-clock`) per round trip.
#
# Env: ECHO_BIN (a build of the echo bench to use), ECHO_KINDS (default "gort tokio").
# Needs: perf (Debian: linux-perf), taskset; perf_event_paranoid low enough (or root).
set -euo pipefail
conns=${1:-100}
procs=${2:-1}
rounds=${3:-3}
cd "$(dirname "$0")/.."
if [ -z "${ECHO_BIN:-}" ]; then
    cargo bench --bench echo --no-run 2>/dev/null
fi
# ECHO_BIN: a given build of the echo bench (to compare two builds of gort), else this tree's.
bin=${ECHO_BIN:-$(ls -t target/release/deps/echo-* | grep -v '\.d$' | head -1)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

measure() { # kind -> prints "syscalls/rt epoll_wait/rt" and the breakdown
    local kind=$1 fifo="$tmp/stdin" port=$((7800 + RANDOM % 100))
    mkfifo "$fifo"
    sleep 30 >"$fifo" &
    local holder=$!
    ECHO_HOLD=$kind ECHO_ADDR=127.0.0.1:$port taskset -c 0 "$bin" <"$fifo" >/dev/null 2>&1 &
    local server=$!
    sleep 0.5
    local clients=() cpu=1
    [ "$procs" -gt 1 ] && cpu=0,1
    for _ in $(seq "$procs"); do
        ECHO_CLIENT=127.0.0.1:$port ECHO_CONNS=$((conns / procs)) ECHO_SECS=5 \
            taskset -c $cpu "$bin" >/dev/null &
        clients+=($!)
    done
    sleep 1.5
    perf stat -x, -e task-clock -e 'syscalls:sys_enter_*' -p "$server" -- sleep 3 2>"$tmp/perf" >/dev/null
    wait "${clients[@]}"
    kill "$holder" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    rm -f "$fifo"
    awk -F, -v kind="$kind" '
        $3 == "task-clock" { ms = $1; next }
        $1 ~ /^[0-9]+$/ && $1 > 0 { n[$3] = $1; total += $1 }
        END {
            rt = n["syscalls:sys_enter_sendto"]
            printf "%-5s %.3f syscalls per round trip (", kind, total / rt
            for (k in n) { s = k; sub("syscalls:sys_enter_", "", s); printf " %s %.3f", s, n[k] / rt }
            printf " ); %d round trips in 3 s, server CPU %.2f us each\n", rt, ms * 1000 / rt
        }' "$tmp/perf"
}

echo "echo, $conns connections, $procs client process(es)"
kinds=${ECHO_KINDS:-gort tokio}
for _ in $(seq "$rounds"); do
    for kind in $kinds; do measure "$kind"; done
done
