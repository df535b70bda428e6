#!/usr/bin/env bash
# The victim-zoo experiments of docs/results/table1.md, transfer-<dataset>.md and
# ruc-robustness.md, from the repository root. On MNIST-test (the default) the embedded victims
# are used and only the SimCLR pretext (the same command and seed as the embedded SCAN's give
# the same pretext) and RUC are trained; on Fashion-MNIST-test every victim is trained first with
# the commands of crates/advclust-models/TRAINING.md. Then: Table 1 rows of MiCE and RUC, the
# transfer matrix (paper Fig. 4) and, on MNIST, the epsilon sweeps of RUC against its base SCAN.
# A step whose output exists is skipped and an interrupted training run resumes from its
# checkpoint, so the script can be rerun.
#   bash scripts/victim-zoo-runs.sh                        # MNIST-test
#   DATASET=fashion bash scripts/victim-zoo-runs.sh        # Fashion-MNIST-test (../shared/data)
#   BIN=target/release/advclust bash scripts/victim-zoo-runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/advclust}
RUNS=${RUNS:-runs}
DATASET=${DATASET:-mnist}
SWEEP_EPS=${SWEEP_EPS:-0.03,0.1}
SWEEP_EPOCHS=${SWEEP_EPOCHS:-6}
mkdir -p "$RUNS"
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# `resume_flag <out>`: --resume when an interrupted run left <out> (its checkpoints live there).
resume_flag() { [ -d "$1" ] && echo --resume || true; }
# `train <out> <final file> <advclust args...>`: one training run, skipped when done.
train() {
  local out=$1 done=$2
  shift 2
  [ -f "$out/$done" ] || "$BIN" "$@" $(resume_flag "$out") --out "$out"
}

case $DATASET in
  mnist)
    DATA=mnist
    PRETEXT_EPOCHS=50
    train "$RUNS/pretext-mnist" report.json train-pretext --dataset "$DATA" \
      --epochs "$PRETEXT_EPOCHS" --eval-every 10 --checkpoint-every 5
    CC=pretrained-cc-mnist SCAN=pretrained-scan-mnist MICE=pretrained-mice-mnist
    OTHERS="pretrained-nnm-mnist pretrained-spice-mnist"
    ;;
  fashion)
    DATA=fashion-mnist:${DATA_DIR:-../shared/data}/fashion-mnist
    step "Fashion-MNIST victims: pretext, SCAN, MiCE (CC after RUC)"
    train "$RUNS/pretext-fashion" report.json train-pretext --dataset "$DATA" \
      --epochs 40 --eval-every 10 --checkpoint-every 5
    train "$RUNS/scan-fashion" report.json train-victim --model scan \
      --pretext "$RUNS/pretext-fashion/pretext" --dataset "$DATA" --epochs 40 --eval-every 10 \
      --checkpoint-every 5 --selflabel-epochs 10
    train "$RUNS/mice-fashion" report.json train-victim --model mice \
      --pretext "$RUNS/pretext-fashion/pretext" --dataset "$DATA" --epochs 20 --eval-every 5 \
      --checkpoint-every 5
    CC=$RUNS/cc-fashion/model SCAN=$RUNS/scan-fashion/model MICE=$RUNS/mice-fashion/model
    OTHERS=${OTHERS:-}
    ;;
  *) echo "DATASET: mnist or fashion, not $DATASET" >&2; exit 2 ;;
esac

step "RUC on $SCAN"
train "$RUNS/ruc-$DATASET" report.json train-victim --model ruc --base "$SCAN" \
  --pretext "$RUNS/pretext-$DATASET/pretext" --dataset "$DATA" --eval-every 2 --checkpoint-every 2
RUC=$RUNS/ruc-$DATASET/model
if [ "$DATASET" = fashion ]; then
  step "Fashion-MNIST CC"
  train "$RUNS/cc-fashion" report.json train-victim --dataset "$DATA" \
    --widths 16,32,64 --stem-stride 2 --epochs 30 --lr 1e-3 --seed 0 --eval-every 5 \
    --checkpoint-every 10
fi

step "transfer matrix (paper Fig. 4)"
# Table 1's eps-0.1 backprop attack has the transfer's settings (seed, subset, convergence):
# where it already ran (on MNIST, docs/results/transfer-mnist.md, Table 1 came first), its
# generators for MiCE and RUC fill their rows instead of being trained again (the transfer
# checks that a reused generator names its victim). The transfer comes first now: it is the
# shorter of the two.
slug() { printf '%s' "$1" | sed 's/[^A-Za-z0-9.]/-/g; s/^-*//; s/-*$//'; }
victims=()
i=0
for v in $CC $SCAN $OTHERS $MICE $RUC; do
  victims+=(--victim "$v")
  case $v in "$MICE") kind=mice ;; "$RUC") kind=ruc ;; *) kind= ;; esac
  src="$RUNS/table1-$kind-$DATASET/$(slug "$v")-$(slug "$DATA")/backprop-eps-0.1"
  dst="$RUNS/transfer-$DATASET/generators/$i-$kind"
  if [ -n "$kind" ] && [ -d "$src/attack" ] && [ ! -e "$dst" ]; then
    mkdir -p "$(dirname "$dst")"
    cp -r "$src" "$dst"
  fi
  i=$((i + 1))
done
[ -f "$RUNS/transfer-$DATASET/transfer.json" ] || "$BIN" transfer "${victims[@]}" \
  --dataset "$DATA" --eps 0.1 --out "$RUNS/transfer-$DATASET"

step "Table 1 rows of MiCE and RUC, then the table of every victim"
for pair in "mice=$MICE" "ruc=$RUC"; do
  name=${pair%%=*}
  [ -f "$RUNS/table1-$name-$DATASET/table1.json" ] || "$BIN" table1 --entry "${pair#*=}@$DATA" \
    --out "$RUNS/table1-$name-$DATASET"
done
# The rows of the other victims were measured before (docs/results/table1-<dataset>*.json).
earlier=()
for f in "docs/results/table1-$DATASET.json" "docs/results/table1-$DATASET-nnm-spice.json"; do
  [ -f "$f" ] && earlier+=(--include "$f")
done
[ -f "$RUNS/table1-all-$DATASET/table1.json" ] || "$BIN" table1 "${earlier[@]}" \
  --include "$RUNS/table1-mice-$DATASET/table1.json" \
  --include "$RUNS/table1-ruc-$DATASET/table1.json" --out "$RUNS/table1-all-$DATASET"

if [ "$DATASET" = mnist ]; then
  # RUC against its base SCAN. (1) Each transfer generator (eps 0.1, trained to convergence)
  # re-bounded at every radius, as the reference notebooks evaluate; (2) fresh attacks at equal
  # budgets (the same epochs, so the same victim calls) at two radii.
  step "RUC against its base SCAN"
  for pair in "scan-mnist=$SCAN=1-scan" "ruc-mnist=$RUC=5-ruc"; do
    IFS="=" read -r name victim gen <<<"$pair"
    [ -f "$RUNS/sweep-$name/sweep.json" ] || "$BIN" sweep --victim "$victim" --dataset "$DATA" \
      --attack "$RUNS/transfer-$DATASET/generators/$gen/attack" --out "$RUNS/sweep-$name"
    [ -f "$RUNS/sweep-retrain-$name/sweep.json" ] || "$BIN" sweep --retrain --victim "$victim" \
      --dataset "$DATA" --eps "$SWEEP_EPS" --train-limit 2048 --epochs "$SWEEP_EPOCHS" \
      --out "$RUNS/sweep-retrain-$name"
  done
  # (3) SCAN's generator against RUC, re-bounded: the transfer row of the matrix at every radius.
  [ -f "$RUNS/sweep-scan-generator-on-ruc/sweep.json" ] || "$BIN" sweep --victim "$RUC" \
    --dataset "$DATA" --attack "$RUNS/transfer-$DATASET/generators/1-scan/attack" \
    --out "$RUNS/sweep-scan-generator-on-ruc"
fi
step done
