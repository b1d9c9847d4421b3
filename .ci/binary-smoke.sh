#!/usr/bin/env bash
# Copies the binary alone into an empty folder outside the repo (no node_modules above it), starts it
# on a free loopback port, and checks /_matrix/client/versions and /_matrix/key/v2/server answer.
set -uo pipefail
binary=$(readlink -f "$1")
dir=$(mktemp -d /tmp/portier-smoke.XXXXXX)
cp "$binary" "$dir/portier"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
cd "$dir"
PORTIER_BIND="127.0.0.1:$port" ./portier serve > "$dir/server.log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
ok=1
for _ in $(seq 1 100); do
  body=$(curl -sf "http://127.0.0.1:$port/_matrix/client/versions" 2>/dev/null) && { ok=0; break; }
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ $ok -ne 0 ]; then echo "the binary did not answer:"; cat "$dir/server.log"; exit 1; fi
echo "versions: $body"
echo "$body" | grep -q '"versions":\[' || { echo "unexpected /versions body"; exit 1; }
keys=$(curl -sf "http://127.0.0.1:$port/_matrix/key/v2/server") || { echo "no key response"; cat "$dir/server.log"; exit 1; }
echo "$keys" | grep -q '"verify_keys"' || { echo "unexpected key response: $keys"; exit 1; }
[ -f "$dir/data/signing.key" ] && [ -f "$dir/data/portier.db" ] || { echo "data/ was not created"; ls -la "$dir" "$dir/data"; exit 1; }
echo "binary smoke test ok"
