#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) with libFuzzer and AddressSanitizer for
# SECONDS each, and prints executions and crashes per target.
#
#   scripts/fuzz.sh            # 20 s a target (what CI runs)
#   scripts/fuzz.sh 3600       # an hour a target: a campaign
#   scripts/fuzz.sh 600 manifest diode_packet   # chosen targets
#
# New inputs collect in fuzz/corpus/<target>/ (kept between runs; seeds come from
# fuzz/seeds/<target>/); a crash is saved in fuzz/artifacts/<target>/ and fails the run.
#
# FUZZ_RUNS=N FUZZ_SEED=S: a fixed number of inputs from a fixed seed, from the committed
# seeds only (a fresh corpus), so the run is the same on every machine. CI runs this way,
# so that its result does not depend on luck; long campaigns are how new inputs are found.
# FUZZ_RUNS_<target>=N sets one target's count (CI: recipe, which runs ~170 inputs/s).
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-20}
shift || true

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
export RUSTC_BOOTSTRAP=1

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== building ${#targets[@]} fuzz targets"
cargo fuzz build --release --debug-assertions >/dev/null 2>build.log || { cat build.log; exit 1; }

crashed=()
printf '%-16s %12s %10s %8s\n' target executions exec/s crashes
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
  log="artifacts/$t/last-run.log"
  corpus="corpus/$t"
  budget=(-max_total_time="$secs")
  if [ -n "${FUZZ_RUNS:-}" ]; then
    corpus=$(mktemp -d)
    # FUZZ_RUNS_<target> overrides FUZZ_RUNS for one slow target.
    per_target="FUZZ_RUNS_$t"
    budget=(-runs="${!per_target:-$FUZZ_RUNS}" -seed="${FUZZ_SEED:-1}")
  fi
  set +e
  cargo fuzz run --release --debug-assertions "$t" "$corpus" "seeds/$t" -- \
    "${budget[@]}" -print_final_stats=1 -rss_limit_mb=2048 -max_len=1048576 \
    -timeout=10 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
  crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' -o -name 'leak-*' \) | wc -l)
  printf '%-16s %12s %10s %8s\n' "$t" "$execs" "$rate" "$crashes"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    crashed+=("$t")
    grep -E 'panicked|ERROR: AddressSanitizer|SUMMARY|Test unit written' "$log" | head -5 || true
  fi
done

if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzzing found crashes in: ${crashed[*]} (inputs in fuzz/artifacts/)"
  exit 1
fi
if [ -n "${FUZZ_RUNS:-}" ]; then
  echo "fuzzing: no crash in ${#targets[@]} targets, ${FUZZ_RUNS} inputs each from seed ${FUZZ_SEED:-1}"
else
  echo "fuzzing: no crash in ${#targets[@]} targets, ${secs} s each"
fi
