#!/usr/bin/env bash
# The defense experiments of docs/results/ssd.md, pca.md and adaptive.md, from the repository
# root: one backprop GAN attack per victim (L-inf 0.1, 2,048 training images, 12 epochs), a
# SimCLR pretext for SSD's features, then `advclust defend ssd | pca | adaptive`. Steps whose
# output exists are skipped, so the script can be rerun after an interruption.
#   DATASET=mnist bash scripts/defense-runs.sh            # the embedded victims
#   BIN=target/release/advclust bash scripts/defense-runs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/advclust}
DATASET=${DATASET:-mnist}
RUNS=${RUNS:-runs/defense-$DATASET}
VICTIMS=${VICTIMS:-pretrained-cc-mnist pretrained-scan-mnist pretrained-nnm-mnist pretrained-spice-mnist}
PRETEXT_EPOCHS=${PRETEXT_EPOCHS:-20}
mkdir -p "$RUNS"

entries=()
for v in $VICTIMS; do
  name=$(basename "$v")
  [ -d "$RUNS/attack-$name" ] || "$BIN" attack --dataset "$DATASET" --victim "$v" --eps 0.1 \
    --train-limit 2048 --epochs 12 --out "$RUNS/attack-$name"
  entries+=(--entry "$v=$RUNS/attack-$name/attack")
done
[ -d "$RUNS/pretext" ] || "$BIN" train-pretext --dataset "$DATASET" --epochs "$PRETEXT_EPOCHS" \
  --eval-every 10 --checkpoint-every 5 --out "$RUNS/pretext"

for features in pretext victim; do
  spec=$features
  [ "$features" = pretext ] && spec="pretext:$RUNS/pretext/pretext"
  [ -d "$RUNS/ssd-$features" ] || "$BIN" defend ssd --dataset "$DATASET" "${entries[@]}" \
    --features "$spec" --clusters 1 --clusters 10 --out "$RUNS/ssd-$features"
done
first=$(basename "${VICTIMS%% *}")
[ -d "$RUNS/pca" ] || "$BIN" defend pca --dataset "$DATASET" \
  --attack "$RUNS/attack-$first/attack" --out "$RUNS/pca"
# The MNIST runs of docs/results/ssd.md stopped this step after CC (weight 1) and ran
# weights 100 and 1000 on CC and SCAN with --out $RUNS/adaptive-w<weight> instead.
[ -d "$RUNS/adaptive" ] || "$BIN" defend adaptive --dataset "$DATASET" "${entries[@]}" \
  --features "pretext:$RUNS/pretext/pretext" --clusters 1 --weight "${ADAPTIVE_WEIGHT:-1}" \
  --out "$RUNS/adaptive"

# The adaptive attack with a detector it can only query (docs/results/ssd.md, last section):
# a query-only attack on the first victim, then the adaptive one on the victim's own features.
first_v=${VICTIMS%% *}
[ -d "$RUNS/attack-nes-$first" ] || "$BIN" attack --dataset "$DATASET" --victim "$first_v" --eps 0.1 \
  --train-limit 2048 --epochs 12 --mode nes --out "$RUNS/attack-nes-$first"
[ -d "$RUNS/adaptive-query-w1000" ] || "$BIN" defend adaptive --dataset "$DATASET" \
  --entry "$first_v=$RUNS/attack-nes-$first/attack" --features victim --clusters 1 --weight 1000 \
  --detector query-only --out "$RUNS/adaptive-query-w1000"

# Adversarial retraining (docs/results/retraining.md), each kind with its training settings.
for v in $VICTIMS; do
  case "$v" in
    pretrained-cc-mnist) opts=(--finetune-epochs 3) ;;
    pretrained-scan-mnist | pretrained-nnm-mnist) opts=(--finetune-epochs 3 --batch-size 128 --lr 1e-4) ;;
    pretrained-spice-mnist) opts=(--finetune-epochs 3 --batch-size 96 --lr 1e-4) ;;
    *) continue ;;
  esac
  kind=${v#pretrained-}; kind=${kind%%-*}
  [ -d "$RUNS/retrain-$kind" ] || "$BIN" defend retrain --dataset "$DATASET" --victim "$v" \
    --attack "$RUNS/attack-$v/attack" --rounds 3 "${opts[@]}" --out "$RUNS/retrain-$kind"
done
