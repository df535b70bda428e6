#!/usr/bin/env bash
# Fuzzes every advclust parser of untrusted bytes (crates/advclust-fuzz): each target in its own
# process, for its fixed CI iteration count, under a virtual-memory limit and a per-process time
# limit. Any panic, abort, hang, or input slower than FUZZ_MAX_INPUT_MS fails; the failing input
# is left in fuzz-failures/ with the command that replays it.
#
#   bash scripts/fuzz.sh                 # every target, CI counts, seed 0
#   FUZZ_SEED=7 FUZZ_SCALE=4 bash scripts/fuzz.sh idx-images cifar
#   FUZZ_PROFILE=test bash scripts/fuzz.sh   # reuse the test build's dependencies
#
# Ends with the line "fuzz: N passed, M failed"; exits non-zero when M > 0.
set -uo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/advclust/target}
seed=${FUZZ_SEED:-0}
scale=${FUZZ_SCALE:-1}
max_input_ms=${FUZZ_MAX_INPUT_MS:-1000}
# Live-heap limit inside the process (an allocation past it fails the input, which is saved),
# and a virtual-memory ceiling around it for anything the counting allocator does not see.
max_memory_mb=${FUZZ_MAX_MEMORY_MB:-2048}
vmem_kib=${FUZZ_ULIMIT_KIB:-$(( 6 * 1024 * 1024 ))}
per_target_s=${FUZZ_TIMEOUT_S:-600}
failures=${FUZZ_FAILURES:-fuzz-failures}

# The release profile by default; FUZZ_PROFILE=test reuses the test build's optimised
# dependencies (no separate release build of the burn stack) and adds overflow checks.
profile=${FUZZ_PROFILE:-release}
cargo build --profile "$profile" -p advclust-fuzz --bin advclust-fuzz || exit 1
case "$profile" in
  release) bin="$CARGO_TARGET_DIR/release/advclust-fuzz" ;;
  dev | test) bin="$CARGO_TARGET_DIR/debug/advclust-fuzz" ;;
  *) bin="$CARGO_TARGET_DIR/$profile/advclust-fuzz" ;;
esac
known=crates/advclust-fuzz/known.txt

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <("$bin" --list | awk '{ print $1 }')
fi

passed=0
failed=0
failed_names=()
for t in "${targets[@]}"; do
  n=$("$bin" --list | awk -v t="$t" '$1 == t { print $2 }')
  if [ -z "$n" ]; then
    echo "fuzz: unknown target $t" >&2
    failed=$(( failed + 1 )); failed_names+=("$t"); continue
  fi
  rc=0
  (
    ulimit -v "$vmem_kib"
    exec timeout "$per_target_s" "$bin" --target "$t" --iterations $(( n * scale )) --seed "$seed" \
      --max-input-ms "$max_input_ms" --max-memory-mb "$max_memory_mb" \
      --known "$known" --failures "$failures"
  ) || rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$(( passed + 1 ))
  else
    case "$rc" in
      124) why="timed out after ${per_target_s} s" ;;
      134) why="aborted (SIGABRT: an allocation failed?)" ;;
      137) why="killed (SIGKILL)" ;;
      139) why="segfault" ;;
      *) why="exit status $rc" ;;
    esac
    echo "fuzz: $t FAILED: $why; input(s) in $failures/ (rerun with --trace to see the last one started)" >&2
    failed=$(( failed + 1 )); failed_names+=("$t")
  fi
done

if [ "$failed" -gt 0 ]; then
  echo "fuzz: failed targets: ${failed_names[*]}" >&2
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
