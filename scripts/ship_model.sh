#!/usr/bin/env bash
# Export, quantize, evaluate and benchmark a finished training run, then install the int8
# model as the daemon's bundled model. Every number in MODEL_CARD.md comes from here.
#   scripts/ship_model.sh runs/edgefer
set -euo pipefail
run=${1:?usage: scripts/ship_model.sh RUN_DIR}
py=${PYTHON:-.venv/bin/python}
$py -m trainer.export "$run/best.pt" -o "$run/emotion_fp32.onnx" | tee "$run/export.txt"
$py -m trainer.quantize "$run/emotion_fp32.onnx" -o "$run/emotion_int8.onnx" \
  --method percentile --keep-edges-float --report "$run/quantize.json" | tee "$run/quantize.txt"
$py -m trainer.evaluate "$run/emotion_int8.onnx" --split val --seen-in train --json \
  > "$run/eval_int8.json"
$py -m trainer.evaluate "$run/emotion_int8.onnx" --split val --tta --json > "$run/eval_int8_tta.json"
$py -m trainer.evaluate "$run/emotion_fp32.onnx" --split val --json > "$run/eval_fp32.json"
$py -m trainer.bench_latency "$run/emotion_int8.onnx" --threads 1 2 --batch 1 8 --json \
  > "$run/latency_int8.json"
$py -m trainer.bench_latency "$run/emotion_fp32.onnx" --threads 1 2 --batch 1 8 --json \
  > "$run/latency_fp32.json"
cp "$run/emotion_int8.onnx" edge_daemon/models/emotion.onnx
echo "installed $run/emotion_int8.onnx as edge_daemon/models/emotion.onnx"
