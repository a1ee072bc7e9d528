#!/usr/bin/env bash
# Run every fuzz target for N seconds each (default 15: the CI setting).
#
#   fuzz/run.sh            # 15 s per target
#   fuzz/run.sh 180        # 3 min per target (the longer local run)
#   FUZZ_TARGETS="sse_decoder policy" fuzz/run.sh 60
#
# Installs cargo-fuzz if missing. Uses the nightly toolchain when rustup has one, otherwise
# the default toolchain with RUSTC_BOOTSTRAP=1. Builds without a sanitizer (`-s none`: the
# code under test is safe Rust, and speed buys coverage) but with debug assertions, so
# arithmetic overflow panics instead of wrapping silently. Before fuzzing, every input in
# regressions/<target>/ (inputs that once crashed) is replayed and must pass.
#
# Exits non-zero if any target crashes, leaks past the memory limit or times out; the input
# is in fuzz/artifacts/<target>/. Per-target executions and coverage are printed at the end.
set -euo pipefail
cd "$(dirname "$0")"

SECS="${1:-15}"
TARGETS="${FUZZ_TARGETS:-sse_decoder provider_openai provider_compat provider_azure provider_anthropic provider_gemini retry_hint policy policy_numbers}"
# No input above 128 KiB, no allocation above 512 MiB at once, no process above 2 GiB, no
# single input running 10 s: "no unbounded allocation" and "no hang" are crashes too.
LIBFUZZER_ARGS=(-max_len=131072 -malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1)

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  FUZZ=(cargo +nightly fuzz)
else
  export RUSTC_BOOTSTRAP=1
  FUZZ=(cargo fuzz)
fi
BUILD_FLAGS=(-O -a -s none)

if [ ! -d corpus ]; then
  echo "==> seeding corpora from core/tests/fixtures"
  python3 make_corpus.py
fi

echo "==> building fuzz targets"
"${FUZZ[@]}" build "${BUILD_FLAGS[@]}"

summary=()
status=0
for t in $TARGETS; do
  mkdir -p "corpus/$t"
  if [ -d "regressions/$t" ] && [ -n "$(ls -A "regressions/$t")" ]; then
    echo "==> $t: replaying regressions"
    if ! "${FUZZ[@]}" run "${BUILD_FLAGS[@]}" "$t" regressions/"$t"/* -- "${LIBFUZZER_ARGS[@]}" >"/tmp/polyroute-fuzz-$t-regressions.log" 2>&1; then
      echo "!! $t: a regression input fails again (log: /tmp/polyroute-fuzz-$t-regressions.log)"
      status=1
      continue
    fi
  fi
  echo "==> $t: fuzzing for ${SECS}s"
  log="/tmp/polyroute-fuzz-$t.log"
  if "${FUZZ[@]}" run "${BUILD_FLAGS[@]}" "$t" "corpus/$t" -- "${LIBFUZZER_ARGS[@]}" -max_total_time="$SECS" >"$log" 2>&1; then
    result=ok
  else
    result=CRASH
    status=1
    grep -E "panicked at|SUMMARY|Test unit written" "$log" | head -5 || true
  fi
  execs=$(grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
  corp=$(ls "corpus/$t" | wc -l)
  summary+=("$(printf '%-20s %-6s execs %-10s %-22s corpus %s' "$t" "$result" "${execs:-?}" "${cov:-?}" "$corp")")
done

echo
echo "==> fuzz summary (${SECS}s per target)"
printf '%s\n' "${summary[@]}"
exit $status
