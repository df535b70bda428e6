#!/usr/bin/env bash
# Kill -9 and resume: `advclust attack` and `advclust train-victim` are killed with SIGKILL at
# several points and resumed with --resume (killed again, resumed again) until they finish; the
# report must equal an uninterrupted run's with the same seed (wall-time fields and the command
# line aside), and an attack's figures of its perturbed images must be the same bytes.
#
#   bash scripts/kill-resume.sh                 # NES, backprop and CC training, 4 kills each, seed 0
#   KILL_SEED=5 KILLS=6 bash scripts/kill-resume.sh nes
#
# Kill times are drawn (seeded) between 10 % and 45 % of the reference run's wall time (each
# attempt after a kill resumes and is shorter), so they land in data loading, training steps,
# checkpoint writes, evaluation and saving. Ends with the line
# "kill-resume: N identical, M differ"; exits non-zero when M > 0.
set -uo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/advclust/target}
profile=${KILL_PROFILE:-release}
cargo build --profile "$profile" -p advclust-cli --bin advclust || exit 1
case "$profile" in
  release) bin="$CARGO_TARGET_DIR/release/advclust" ;;
  dev | test) bin="$CARGO_TARGET_DIR/debug/advclust" ;;
  *) bin="$CARGO_TARGET_DIR/$profile/advclust" ;;
esac
kills=${KILLS:-4}
seed=${KILL_SEED:-0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The runs: a query-only attack (NES with the time prior: estimator RNG, caches, ledger), a
# backprop attack, and a CC victim training (checkpoint every epoch), each small enough to run
# in tens of seconds on 2 cores.
declare -A modes=(
  [nes]="attack --mode nes --samples 2 --momentum 0.5 --train-limit 2048 --limit 1000 --epochs 2 --batch-size 64 --budget-calls 100 --checkpoint-every 1"
  [backprop]="attack --mode backprop --train-limit 1024 --limit 1000 --epochs 3 --batch-size 64 --checkpoint-every 1"
  [cc]="train-victim --model cc --limit 2048 --widths 16,32 --blocks 1 --epochs 8 --batch-size 128 --eval-every 1 --checkpoint-every 1"
)
if [ "$#" -gt 0 ]; then names=("$@"); else names=(nes backprop cc); fi

same() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
def clean(path):
    r = json.load(open(path))
    if "resumed_after_epoch" in r:
        # A training report's `steps` and `resumed_after_epoch` describe the last process (the
        # steps of every epoch are in `epochs`).
        r.pop("steps", None)
    for k in ("training_wall_time_s", "evaluation_wall_time_s", "command", "process_seconds",
              "mean_step_ms", "train_seconds", "wall_seconds", "resumed_after_epoch"):
        r.pop(k, None)
    # An attack report's `curves` and a training report's `epochs` are lists of per-step or
    # per-epoch records (an attack report's `epochs` is a count).
    for key in ("curves", "epochs"):
        records = r.get(key)
        for e in records if isinstance(records, list) else []:
            if isinstance(e, dict):
                e.pop("elapsed_s", None)
                e.pop("train_seconds", None)
    if isinstance(r.get("config"), dict) and isinstance(r["config"].get("run"), dict):
        for k in ("resume", "checkpoint_dir"):
            r["config"]["run"].pop(k, None)
    return r
a, b = clean(sys.argv[1]), clean(sys.argv[2])
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            print(f"  differs: {k}: {json.dumps(a.get(k))[:200]} vs {json.dumps(b.get(k))[:200]}")
    sys.exit(1)
EOF
}

identical=0
differ=0
for name in "${names[@]}"; do
  read -r -a args <<<"${modes[$name]}"
  ref="$work/$name-ref"
  t0=$(date +%s%N)
  "$bin" "${args[@]}" --seed 3 --out "$ref" >/dev/null 2>"$work/$name-ref.log" \
    || { cat "$work/$name-ref.log"; exit 1; }
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$name: uninterrupted run ${ms} ms"
  # Kill points: `kills` seeded draws across the run's wall time, each in a fresh attempt of
  # the same killed run (so one run is killed `kills` times, then resumed to its end).
  mapfile -t points < <(python3 -c "
import random; r = random.Random($seed * 1000 + len('$name'))
print('\n'.join(str(int(r.uniform(0.1, 0.45) * $ms)) for _ in range($kills)))")
  out="$work/$name-killed"
  resume=()
  for p in "${points[@]}"; do
    [ -f "$out/report.json" ] && break
    "$bin" "${args[@]}" --seed 3 --out "$out" "${resume[@]}" \
      >/dev/null 2>>"$work/$name-killed.log" &
    pid=$!
    sleep "$(python3 -c "print($p / 1000)")"
    if kill -9 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null
      if [ "${args[0]}" = attack ]; then
        checkpoint="$work/.$name-killed.checkpoint"
        where="step"
        query="['report']['steps']"
      else
        checkpoint="$out/cc"
        where="epoch"
        query="['epoch']"
      fi
      at=$(python3 -c "
import json, sys
try: print(json.load(open('$checkpoint/state.json'))$query)
except Exception: print('none')")
      echo "$name: SIGKILL at ${p} ms (checkpoint at $where $at)"
      if [ -d "$checkpoint" ] || [ -d "$checkpoint.old" ]; then resume=(--resume); else resume=(); fi
    else
      wait "$pid"
      echo "$name: the attempt ended before the kill at ${p} ms"
    fi
  done
  if [ ! -f "$out/report.json" ]; then
    "$bin" "${args[@]}" --seed 3 --out "$out" "${resume[@]}" \
      >/dev/null 2>>"$work/$name-killed.log" || { cat "$work/$name-killed.log"; exit 1; }
  fi
  # The report holds every score, count, curve and perturbation norm; the figures hold the
  # perturbed images (generator.bpk itself differs run to run only in burn's random parameter
  # ids, not in values).
  figures=(grid.png confusion.png)
  [ "${args[0]}" = attack ] || figures=()
  same_figures=true
  for f in "${figures[@]}"; do cmp -s "$ref/$f" "$out/$f" || same_figures=false; done
  if same "$ref/report.json" "$out/report.json" && $same_figures; then
    echo "$name: resumed run identical to the uninterrupted one (report${figures:+, figures})"
    identical=$((identical + 1))
  else
    echo "$name: resumed run DIFFERS"
    differ=$((differ + 1))
  fi
  if ls -a "$work" | grep -q "^\.$name-killed\.\(staging\|checkpoint\)"; then
    echo "$name: left behind: $(ls -a "$work" | grep "^\.$name-killed")"
    differ=$((differ + 1))
  fi
done
echo "kill-resume: $identical identical, $differ differ"
[ "$differ" -eq 0 ]
