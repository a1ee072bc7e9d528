#!/usr/bin/env bash
# Instructions per routed call, counted by callgrind: deterministic where timings on a
# shared VM swing by a quarter. Runs `bench_overhead` with BENCH_PROFILE=sync (one caller
# thread, `Router::chat` under `inline::block_on`, 10 s of wall time, slowed ~50x by
# valgrind), collects only inside `Router::chat` on that thread, and divides by the number
# of routed calls (`select` runs once per call).
#
#   bash bench/rust/callgrind.sh [path/to/bench_overhead] [out-file]
#   callgrind_annotate --inclusive=yes OUT    # where they go (divide by the count printed)
#
# Needs valgrind (Debian package `valgrind`). Build first:
#   cargo build --release -p polyroute --example bench_overhead
set -euo pipefail
bin=${1:-target/release/examples/bench_overhead}
out=${2:-/tmp/polyroute-callgrind.out}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
BENCH_PROFILE=sync valgrind --tool=callgrind --collect-atstart=no \
  --toggle-collect='polyroute::router::Router::chat::{{closure}}' \
  --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
python3 - "$out" <<'PY'
import re, sys
names, calls, total, cfn = {}, 0, 0, None
for line in open(sys.argv[1]):
    m = re.match(r'(c?fn)=\((\d+)\)(?: (.*))?', line)
    if m:
        kind, ident, name = m.groups()
        if name:
            names[ident] = name.strip()
        if kind == 'cfn':
            cfn = names.get(ident, '')
        continue
    m = re.match(r'calls=(\d+)', line)
    if m and cfn and re.search(r'router::select::select$', cfn):
        calls += int(m.group(1))
    if line.startswith(('summary:', 'totals:')) and not total:
        total = int(line.split()[1])
if not calls:
    sys.exit("no routed calls recorded")
print(f"routed calls: {calls}, instructions per call: {total // calls}")
PY
