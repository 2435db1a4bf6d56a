#!/usr/bin/env bash
# Reproduces the shipped checkpoint, models/pretrained/imusic11, from nothing: `make checkpoint`.
#
#   1. a synthetic dataset: 24 made-up subjects x 5 min, 11 IMUSIC sites at 100 Hz (seed 0);
#      20 subjects train, 2 validate, 2 are held out for the test split;
#   2. stage 1, the blendshape motion prior (experiment=ship_prior);
#   3. stage 2, IMU conditioning from the prior (experiment=ship);
#   4. the Transformer regressor baseline: the same backbone without diffusion;
#   5. `imucap eval` on the held-out subjects, fitting the ridge and GRU baselines, which are
#      kept in the checkpoint's baselines/ folder with the regressor;
#   6. the checkpoint (no optimizer state), its report and plots, into the package.
#
# Settings: DATA (dataset folder), RUNS (run folder), IMUCAP (the command). On the two-core CPU
# it was made on it takes about an hour; trainer=gpu makes stages 2-4 much faster
# (EXTRA="trainer=gpu").
set -euo pipefail
DATA=${DATA:-data/ship100}
RUNS=${RUNS:-runs/ship}
IMUCAP=${IMUCAP:-imucap}
EXTRA=${EXTRA:-}
DEST=models/pretrained/imusic11

if [ ! -f "$DATA/info.json" ]; then
  $IMUCAP dataset synth --subjects 24 --minutes 5 --rate-hz 100 --seed 0 --out "$DATA"
fi
$IMUCAP train experiment=ship_prior "data.path=$DATA" "trainer.out_dir=$RUNS/prior" $EXTRA
$IMUCAP train experiment=ship "data.path=$DATA" "trainer.init_from=$RUNS/prior/best" \
  "trainer.out_dir=$RUNS/diffusion" $EXTRA
$IMUCAP train experiment=ship "data.path=$DATA" model.diffusion=false \
  "trainer.out_dir=$RUNS/transformer" $EXTRA

rm -rf "$DEST" "$RUNS/ship"
mkdir -p "$RUNS/ship/baselines"
cp "$RUNS/diffusion/best/checkpoint.json" "$RUNS/diffusion/best/model.safetensors" "$RUNS/ship/"
mkdir -p "$RUNS/ship/baselines/transformer"
cp "$RUNS/transformer/best/checkpoint.json" "$RUNS/transformer/best/model.safetensors" \
  "$RUNS/ship/baselines/transformer/"
$IMUCAP eval "$RUNS/ship" --data "$DATA" --split test --fit mean,ridge,gru \
  --save-baselines "$RUNS/ship/baselines" --out "$RUNS/eval"
cp -r "$RUNS/ship" "$DEST"
mkdir -p "$DEST/eval"
cp "$RUNS/eval/metrics.json" "$RUNS/eval/report.txt" "$DEST/eval/"
for f in "$RUNS/eval/"*.png; do cp "$f" "docs/images/imusic11_$(basename "$f")"; done
python scripts/ship_report.py "$DEST" >/dev/null
echo "shipped: $DEST ($(du -sh "$DEST" | cut -f1)); report in $DEST/eval/report.txt"
