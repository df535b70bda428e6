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
[ -d "$RUNS/adaptive" ] || "$BIN" defend adaptive --dataset "$DATASET" "${entries[@]}" \
  --features "pretext:$RUNS/pretext/pretext" --clusters 1 --weight "${ADAPTIVE_WEIGHT:-1}" \
  --out "$RUNS/adaptive"
