#!/usr/bin/env bash
# Reproduces the shipped speech-to-face checkpoint, models/pretrained/speech_en, from nothing:
# `make speech-checkpoint`.
#
#   1. a synthetic speech dataset: 4000 utterances (about 3 h) spoken by espeak-ng with 60
#      training speakers (English accents x voice variants x pitch x speaking style), mouth
#      curves from the viseme model; validation and test speakers use voice variants and
#      sentences no training clip has (seed 0);
#   2. stage 1, the mouth's motion prior (experiment=audio_prior, 2 epochs);
#   3. stage 2, audio conditioning from the prior (experiment=audio2face, 6 epochs);
#   4. `imucap eval` on the test split beside the viseme model, ridge regression and the mean
#      face; the report and the plot go into the package with the weights.
#
# Settings: DATA (dataset folder), RUNS (run folder), IMUCAP (the command). About 25 minutes
# on the two-core CPU it was made on (EXTRA="trainer=gpu" for a GPU).
set -euo pipefail
DATA=${DATA:-data/speech}
RUNS=${RUNS:-runs/speech}
IMUCAP=${IMUCAP:-imucap}
EXTRA=${EXTRA:-}
DEST=models/pretrained/speech_en

if [ ! -f "$DATA/speech.json" ]; then
  $IMUCAP speech-data make "$DATA" --clips 4000 --speakers 60 --seed 0 --workers 2
fi
$IMUCAP train experiment=audio_prior "data.path=$DATA" "trainer.out_dir=$RUNS/prior" \
  trainer.epochs=2 $EXTRA
$IMUCAP train experiment=audio2face "data.path=$DATA" "trainer.init_from=$RUNS/prior/best" \
  "trainer.out_dir=$RUNS/model" trainer.epochs=6 $EXTRA

rm -rf "$DEST"
mkdir -p "$DEST/eval"
cp "$RUNS/model/best/checkpoint.json" "$RUNS/model/best/model.safetensors" "$DEST/"
$IMUCAP eval "$DEST" --data "$DATA" --split test --out "$RUNS/eval"
cp "$RUNS/eval/metrics.json" "$RUNS/eval/report.txt" "$DEST/eval/"
cp "$RUNS/eval/curves.png" docs/images/speech_en_curves.png
echo "shipped: $DEST ($(du -sh "$DEST" | cut -f1)); report in $DEST/eval/report.txt"
