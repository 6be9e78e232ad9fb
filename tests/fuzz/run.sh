#!/usr/bin/env bash
# Runs the libFuzzer targets of a DELTAKIT_FUZZ build, each for SECONDS over a copy of its corpus
# (the committed corpus is never written), and prints one row per target: executions, executions
# per second, edge coverage, new corpus entries, result. A crash, leak, timeout or sanitizer report
# fails the run; its input is kept under OUT/TARGET/ to be added to corpus/TARGET/ once fixed.
# Targets run side by side, one per core (DELTAKIT_FUZZ_JOBS to choose).
# Targets named in DELTAKIT_FUZZ_REPORT_ONLY (comma-separated) report their findings without
# failing: for a known, open class of findings (tests/fuzz/README.md says which and why).
#   tests/fuzz/run.sh BUILD_DIR SECONDS [OUT] [TARGET...]     e.g. tests/fuzz/run.sh build-fuzz 30
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$1 seconds=$2 out=${3:-$(mktemp -d)}
shift $(( $# < 3 ? $# : 3 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for d in "$here"/corpus/*/; do targets+=("$(basename "$d")"); done
fi
mkdir -p "$out"
export DELTAKIT_FUZZ_TMP=$(mktemp -d)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$here/lsan.supp}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# one target: its row on stdout, its findings on stderr, exit 1 if it failed
run_one() {
  local t=$1
  local bin="$build/tests/fuzz/fuzz_$t"
  local work
  work=$(mktemp -d)
  cp -r "$here/corpus/$t" "$work/corpus"
  mkdir -p "$out/$t"
  local dict=()
  [ -f "$here/dict/$t.dict" ] && dict=(-dict="$here/dict/$t.dict")
  local before
  before=$(ls "$work/corpus" | wc -l)
  # a fixed seed and a cap on runs: the same mutations on every machine (a slower one stops at
  # SECONDS, earlier in the same sequence), so a clean run here is a clean run in CI
  "$bin" "$work/corpus" "${dict[@]}" -seed="${DELTAKIT_FUZZ_SEED:-1}" -runs="${DELTAKIT_FUZZ_RUNS:-30000}" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/$t/" >"$work/log" 2>&1
  local rc=$? fail=0
  local runs cov rate after
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work/log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -1 | grep -o '[0-9]*')
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$work/log" | grep -o '[0-9]*$' | tail -1)
  after=$(ls "$work/corpus" | wc -l)
  local result=ok
  if [ $rc -ne 0 ]; then
    result="FAILED (exit $rc; input in $out/$t/)"
    if [[ ",${DELTAKIT_FUZZ_REPORT_ONLY:-}," == *",$t,"* ]]; then
      result="found (exit $rc; report only: input in $out/$t/)"
    else
      fail=1
    fi
    grep -m 12 -E 'ERROR|SUMMARY|deltakit fuzz|==[0-9]+==|runtime error|#[0-9]+ 0x' "$work/log" | sed 's/^/    /' >&2
  fi
  printf '%-20s %10s %8s %6s %6s  %s\n' "$t" "${runs:-?}" "${rate:-?}" \
    "${cov:-?}" "$((after - before))" "$result"
  rm -rf "$work"
  return $fail
}

# the targets run side by side, one per core (DELTAKIT_FUZZ_JOBS), their rows printed in order
jobs_max=${DELTAKIT_FUZZ_JOBS:-$(nproc)}
rows=$(mktemp -d)
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n; done
  ( run_one "$t" >"$rows/$t.row" 2>"$rows/$t.err"; echo $? >"$rows/$t.rc" ) &
done
wait
failed=0
printf '%-20s %10s %8s %6s %6s  %s\n' target executions exec/s edges new result
for t in "${targets[@]}"; do
  cat "$rows/$t.row"
  cat "$rows/$t.err" >&2
  [ "$(cat "$rows/$t.rc" 2>/dev/null)" = 0 ] || failed=1
done
rm -rf "$rows"
rm -rf "$DELTAKIT_FUZZ_TMP"
exit $failed
