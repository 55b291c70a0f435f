#!/usr/bin/env bash
# Fuzz the HTTP API from docs/openapi.yaml with schemathesis against a live `sluice serve` on
# 127.0.0.1, bounded in examples and time. Checks: no 5xx, and every status, content type and body
# is the one the spec documents.
#   tools/fuzz/schemathesis.sh [--max-examples N]
set -euo pipefail
cd "$(dirname "$0")/../.."
examples=${2:-40}
[ "${1:-}" = "--max-examples" ] || examples=40
venv=${TMPDIR:-/tmp}/sluice-schemathesis-venv
[ -x "$venv/bin/st" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "schemathesis==4.32.5"; }
flock /tmp/sluice-build.lock swift build --product sluice >&2  # never beside another Swift build
work=$(mktemp -d /tmp/sluice-fuzz.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
# --max-wait 2: a fuzzed ?wait may not hold requests for minutes (the spec allows up to 3600 s).
.build/debug/sluice serve --port "$port" --db "$work/fuzz.db" --concurrency 4 --max-wait 2 --log-level error > "$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT INT TERM
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
timeout 900 "$venv/bin/st" run docs/openapi.yaml --url "http://127.0.0.1:$port" \
  --max-examples "$examples" --request-timeout 10 --workers 2 \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance
echo "server still up: $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")"
