#!/usr/bin/env bash
# Re-measures every Contextrast / baseline latency ratio that README.md and deploy/README.md quote,
# plus the deployed-accuracy table (PyTorch vs ONNX Runtime fp32 / fp16 / INT8 on CamVid val).
# Run it on a quiet machine: anything else on the cores is measured too.
#
#   bash bench/deploy_ratios.sh OUT_DIR [CHECKPOINT CONFIG]
#
# CHECKPOINT / CONFIG: a trained CamVid lite0 model for the deployed-accuracy part (skipped when
# not given). Needs DETECTRON2_DATASETS with camvid/ for the CamVid parts (skipped without it).
# Writes OUT_DIR/*.json and *.md; each step's command is echoed to OUT_DIR/commands.txt.
# Environment: PYTHON (default .venv/bin/python), NETWORKS (paper networks timed after the demo;
# default all three), BENCH_FLAGS (extra deploy/benchmark.py flags, e.g. for a quick try).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: bench/deploy_ratios.sh OUT_DIR [CHECKPOINT CONFIG]}
CKPT=${2:-}
CKPT_CFG=${3:-}
if [ -n "$CKPT" ] && [ -z "$CKPT_CFG" ]; then
    echo "error: CHECKPOINT $CKPT needs its CONFIG (usage: bench/deploy_ratios.sh OUT_DIR [CHECKPOINT CONFIG])" >&2
    exit 2
fi
PY=${PYTHON:-.venv/bin/python}
NETWORKS=${NETWORKS-hrnet_w48 ocrnet_hrnet_w48 deeplabv3_r101}
read -r -a EXTRA <<<"${BENCH_FLAGS:-}"
mkdir -p "$OUT"
: >"$OUT/commands.txt"
run() { echo "$*" >>"$OUT/commands.txt"; echo "+ $*" >&2; "$@"; }

# 1. Demo networks, 3-iteration checkpoints (tools/train_net.py), then the paper's networks with
#    random weights; one thread per runtime, then the default threads.
for v in baseline contextrast; do
    [ -f "$OUT/demo_ckpt/$v/model_final.pth" ] || run "$PY" tools/train_net.py \
        --config-file configs/demo/$v.yaml SOLVER.MAX_ITER 3 SOLVER.WARMUP_ITERS 0 \
        SOLVER.IMS_PER_BATCH 2 INPUT.CROP.SIZE "(64, 64)" DATALOADER.NUM_WORKERS 0 \
        DATASETS.TEST "()" OUTPUT_DIR "$OUT/demo_ckpt/$v" >"$OUT/demo_ckpt_$v.log" 2>&1
done
for threads in 1 default; do
    t=(); [ "$threads" = default ] || t=(--threads "$threads")
    run "$PY" deploy/benchmark.py --baseline configs/demo/baseline.yaml \
        --contextrast configs/demo/contextrast.yaml \
        --baseline-weights "$OUT/demo_ckpt/baseline/model_final.pth" \
        --contextrast-weights "$OUT/demo_ckpt/contextrast/model_final.pth" \
        --height 160 --width 240 --backends torch-cpu ort-cpu "${t[@]}" "${EXTRA[@]}" \
        --output-json "$OUT/lat_demo_t$threads.json" --output-md "$OUT/lat_demo_t$threads.md"
    for n in $NETWORKS; do
        run "$PY" deploy/benchmark.py --baseline configs/cityscapes/${n}_baseline.yaml \
            --contextrast configs/cityscapes/${n}_contextrast.yaml --height 128 --width 256 \
            --backends torch-cpu ort-cpu "${t[@]}" --warmup 2 --rounds 6 --repeats 3 "${EXTRA[@]}" \
            --output-json "$OUT/lat_${n}_t$threads.json" --output-md "$OUT/lat_${n}_t$threads.md"
    done
done

if [ ! -d "${DETECTRON2_DATASETS:-datasets}/camvid" ]; then
    echo "no camvid/ under DETECTRON2_DATASETS: CamVid parts skipped" >&2
    exit 0
fi

# 2. The two lite0 configs, same random weights, every precision, side by side on CamVid val.
P="$OUT/precision"
mkdir -p "$P"
for v in baseline contextrast; do
    C=configs/camvid/lite0_deeplabv3plus_$v.yaml
    run "$PY" deploy/export_onnx.py --config-file $C --output "$P/$v.onnx" --height 360 \
        --width 480 MODEL.WEIGHTS "" MODEL.CONTEXTRAST.PROJ_DIM 128
    run "$PY" deploy/export_onnx.py --config-file $C --output "$P/${v}_fp16.onnx" \
        --precision fp16 --height 360 --width 480 MODEL.WEIGHTS "" MODEL.CONTEXTRAST.PROJ_DIM 128
    run "$PY" deploy/quantize.py --onnx "$P/$v.onnx" --output "$P/${v}_int8.onnx" --num-images 32
done
run "$PY" deploy/evaluate.py --model "$P/baseline.onnx" "$P/contextrast.onnx" \
    "$P/baseline_int8.onnx" "$P/contextrast_int8.onnx" "$P/baseline_fp16.onnx" \
    "$P/contextrast_fp16.onnx" --dataset camvid_val --threads 1 --output-json "$P/ratio.json"
run "$PY" - "$P/ratio.json" >"$P/ratio.md" <<'EOF'
import json, sys
import numpy as np
rows = json.load(open(sys.argv[1]))["results"]
print("| precision | baseline median ms | Contextrast median ms | median ratio | paired ratio | p90 ratio |")
print("|---|---:|---:|---:|---:|---:|")
names = list(rows)
for base, ctx in zip(names[::2], names[1::2]):
    b, c = np.asarray(rows[base]["times_ms"]), np.asarray(rows[ctx]["times_ms"])
    print(f"| {base} | {np.median(b):.2f} | {np.median(c):.2f} | {np.median(c) / np.median(b):.3f} "
          f"| {np.median(c / b):.3f} | {np.percentile(c, 90) / np.percentile(b, 90):.3f} |")
EOF

# 3. Deployed accuracy of a trained checkpoint: PyTorch, ONNX Runtime fp32 / INT8 / fp16.
[ -n "$CKPT" ] || exit 0
# The study's checkpoints were trained with MODEL.CONTEXTRAST.PROJ_DIM 128 (configs/camvid/study/).
A="$OUT/accuracy"
O=(MODEL.WEIGHTS "" MODEL.CONTEXTRAST.PROJ_DIM 128)
mkdir -p "$A"
run "$PY" deploy/export_onnx.py --config-file "$CKPT_CFG" --weights "$CKPT" --output "$A/model.onnx" \
    --height 360 --width 480 "${O[@]}"
run "$PY" deploy/export_onnx.py --config-file "$CKPT_CFG" --weights "$CKPT" \
    --output "$A/model_fp16.onnx" --precision fp16 --height 360 --width 480 "${O[@]}"
run "$PY" deploy/quantize.py --onnx "$A/model.onnx" --output "$A/model_int8.onnx" --num-images 32
run "$PY" deploy/evaluate.py --model "$A/model.onnx" "$A/model_int8.onnx" "$A/model_fp16.onnx" \
    --config-file "$CKPT_CFG" --weights "$CKPT" --threads 1 --output-json "$A/accuracy.json" \
    "${O[@]}"
