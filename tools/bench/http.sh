#!/usr/bin/env bash
# HTTP figures of `sluice serve` in release mode, against the ideal and a bare Hummingbird endpoint.
#   tools/bench/http.sh [--quick] [--repeats N] [--full-seed]
#   SEED_POOLS="50 60" tools/bench/http.sh --full-seed   # only some pool sizes
#   SECTIONS="enqueue" tools/bench/http.sh                # only some sections (seed enqueue health)
# Every load targets 127.0.0.1 only, is bounded in count and time, and everything started is stopped
# on exit. Needs ab (apache2-utils) and wrk; installs them when missing (Debian).
set -euo pipefail
cd "$(dirname "$0")/../.."
repeats=3; quick=0; full_seed=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; repeats=1 ;;
    --repeats) repeats="$2"; shift ;;
    --full-seed) full_seed=1 ;;
    *) echo "usage: $0 [--quick] [--repeats N] [--full-seed]" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v ab >/dev/null || ! command -v wrk >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq apache2-utils wrk </dev/null >/dev/null
fi
swift build -c release --scratch-path .build-release --product sluice >&2
swift build -c release --scratch-path .build-release --product sluice-bench-bare >&2
bin=$PWD/.build-release/release
work=$(mktemp -d /tmp/sluice-bench-http.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_up() { for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "server on $1 did not start" >&2; return 1; }
# start_serve PORT ARGS… : a fresh database each time
start_serve() { local port=$1; shift; "$bin/sluice" serve --port "$port" --db "$work/$port.db" --log-level error "$@" >/dev/null 2>&1 & pids+=($!); wait_up "$port"; }
stop_last() { local p=${pids[-1]}; kill "$p"; wait "$p" 2>/dev/null || true; unset 'pids[-1]'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
minmax() { sort -g | awk 'NR==1{min=$1} {max=$1} END {printf "%s–%s", min, max}'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
threads() { awk '/Threads/ {print $2}' "/proc/$1/status"; }

echo "# sluice HTTP benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, repeats $repeats$([ $quick = 1 ] && echo ', quick sizes')"
echo

sections=${SECTIONS:-seed enqueue health}
want() { [[ " $sections " == *" $1 "* ]]; }

# 1. The seed's experiment: ab -c 50 against POST /v1/tasks?wait=… with a blocking sleep.
if want seed; then
if [ $quick = 1 ] || [ $full_seed = 0 ]; then n=500; sleep_s=0.5; else n=1000; sleep_s=3; fi
echo "{\"kind\":\"sleep\",\"args\":{\"seconds\":$sleep_s}}" > "$work/body.json"
echo "## Seed: ab -n $n -c 50, sleep $sleep_s s per request (ideal = n / min(pool, 50) × $sleep_s s)"
echo
echo "| pool concurrency | total time (s), median (min–max) | requests/s | ideal (s) | ratio | failed |"
echo "|---:|---:|---:|---:|---:|---:|"
for c in ${SEED_POOLS:-12 40 50 60 200}; do
  times=(); rps=(); failed=0
  for _ in $(seq 1 "$repeats"); do
    port=$(free_port); start_serve "$port" --concurrency "$c"
    out=$(timeout 600 ab -q -n "$n" -c 50 -s 60 -p "$work/body.json" -T application/json "http://127.0.0.1:$port/v1/tasks?wait=60" 2>&1 || true)
    echo "$out" | grep -q "Time taken" || { echo "ab failed: $(echo "$out" | tail -1)" >&2; exit 1; }
    times+=("$(echo "$out" | awk '/Time taken for tests/ {print $5}')")
    rps+=("$(echo "$out" | awk '/Requests per second/ {print $4}')")
    f=$(echo "$out" | awk '/Failed requests/ {print $3}'); x=$(echo "$out" | awk '/Non-2xx responses/ {print $3}')
    failed=$((failed + ${f:-0} + ${x:-0}))
    stop_last
  done
  eff=$(( c < 50 ? c : 50 ))
  ideal=$(python3 -c "import math; print(round(math.ceil($n/$eff)*$sleep_s, 2))")
  t=$(printf '%s\n' "${times[@]}" | median)
  echo "| $c | $t ($(printf '%s\n' "${times[@]}" | minmax)) | $(printf '%s\n' "${rps[@]}" | median) | $ideal | $(python3 -c "print(round($t/$ideal, 3))") | $failed |"
done
echo

fi

# 2. Enqueue throughput: wrk, 50 keep-alive connections, against sluice and a bare Hummingbird endpoint.
if want enqueue; then
duration=$([ $quick = 1 ] && echo 5 || echo 10)
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("BODY")
LUA
wrk_rps() { BODY="$2" timeout 120 wrk -t2 -c50 -d"${duration}s" -s "$work/post.lua" "$1" 2>&1 | awk '/Requests\/sec/ {print $2}'; }
echo "## Enqueue throughput: wrk -t2 -c50 -d${duration}s POST /v1/tasks (requests/s, median (min–max))"
echo
echo "| server | requests/s | ratio to bare |"
echo "|---|---:|---:|"
declare -A result
run_case() { # name, body, start command…
  local name=$1 body=$2; shift 2; local vals=()
  for _ in $(seq 1 "$repeats"); do
    port=$(free_port); "$@" "$port"
    vals+=("$(wrk_rps "http://127.0.0.1:$port/v1/tasks" "$body")")
    stop_last
  done
  result[$name]=$(printf '%s\n' "${vals[@]}" | median)
  result[$name.range]=$(printf '%s\n' "${vals[@]}" | minmax)
}
bare() { "$bin/sluice-bench-bare" "$1" >/dev/null 2>&1 & pids+=($!); for _ in $(seq 1 100); do curl -s -o /dev/null -X POST -d '{}' "http://127.0.0.1:$1/v1/tasks" && break; sleep 0.1; done; }
durable_full() { start_serve "$1" --no-pool; }
durable_normal() { start_serve "$1" --no-pool --sync normal; }
ff() { start_serve "$1" --concurrency 8; }
run_case bare '{"kind":"echo"}' bare
run_case full '{"kind":"echo"}' durable_full
run_case normal '{"kind":"echo"}' durable_normal
run_case ffdelay '{"kind":"echo","durable":false,"delay":3600}' ff
run_case ff '{"kind":"echo","durable":false}' ff
for k in bare full normal ffdelay ff; do
  label=$(case $k in bare) echo "bare Hummingbird JSON endpoint (ceiling)";; full) echo "sluice durable, synchronous=full (--no-pool)";; normal) echo "sluice durable, synchronous=normal (--no-pool)";; ffdelay) echo "sluice fire-and-forget, delayed (enqueue only)";; ff) echo "sluice fire-and-forget, run at once (the pool runs each echo too)";; esac)
  echo "| $label | ${result[$k]} (${result[$k.range]}) | $(python3 -c "print(round(${result[$k]}/${result[bare]}, 3))") |"
done
echo
fi

# 3. Event-loop health and resources with 1,000 blocking tasks running.
if want health; then
port=$(free_port); start_serve "$port" --concurrency 1000
spid=${pids[-1]}
idle_rss=$(rss_mb "$spid")
python3 - "$port" <<'PY'
import json, sys, urllib.request
body = json.dumps([{"kind": "sleep", "args": {"seconds": 20}} for _ in range(1000)]).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v1/tasks/batch", data=body, headers={"Content-Type": "application/json"})
urllib.request.urlopen(req).read()
PY
for _ in $(seq 1 100); do busy=$(curl -s "http://127.0.0.1:$port/v1/pools" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pools"][0]["busy"])'); [ "$busy" -ge 1000 ] && break; sleep 0.1; done
lat=$(timeout 60 wrk -t1 -c1 -d5s --latency "http://127.0.0.1:$port/healthz" 2>&1)
busy_rss=$(rss_mb "$spid"); busy_threads=$(threads "$spid")
echo "## Event loop and memory"
echo
echo "| measure | value |"
echo "|---|---:|"
echo "| busy tasks while measuring | $busy |"
echo "| GET /healthz p50 (wrk, 1 connection, 5 s) | $(echo "$lat" | awk '$1=="50%" {print $2}') |"
echo "| GET /healthz p99 | $(echo "$lat" | awk '$1=="99%" {print $2}') |"
echo "| idle \`sluice serve\` RSS (pool of 1,000, no task yet) | $idle_rss MB |"
echo "| RSS with 1,000 sleep tasks running | $busy_rss MB |"
echo "| threads with 1,000 sleep tasks running | $busy_threads |"
stop_last
port=$(free_port); start_serve "$port"
sleep 2
echo "| idle \`sluice serve\` RSS (default pool of 10) | $(rss_mb "${pids[-1]}") MB |"
stop_last
fi
