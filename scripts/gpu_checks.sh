#!/usr/bin/env bash
# Every GPU check of the project in one run, for a GPU host (e.g. a lent device session):
#   1. the CUDA tests (tests/gpu: exact EDT, AMP step without host syncs, CPU/GPU parity),
#   2. bench/train_step.py, HRNetV2-W48 512x1024 batch 8: CE vs + CCL vs + CCL + BANE, fp32 + AMP,
#   3. bench/bane.py on CUDA (EDT vs scipy, BANE's share of the HRNet step),
#   4. deploy/benchmark.py: PyTorch CUDA fp32 / fp16 / bf16 latency, baseline vs Contextrast,
#      HRNetV2-W48, OCRNet and DeepLabV3-R101 at 1024x2048,
#   5. deploy/export_onnx.py parity: ONNX Runtime vs PyTorch on CUDA (strict float32),
#   6. tools/train_net.py on CamVid with AMP for the three networks, then multi-scale + flip eval,
#   7. the lite0 CamVid recipe (ImageNet EfficientNet-Lite0) at the paper's schedule, CE only vs
#      the head recipe (the lite0 default config's placement), seed 0.
# Sections are independent (a failure is logged, the next one runs) and time-boxed; results go to
# $OUT (default output/gpu_checks): gpu_checks.log and one JSON per benchmark.
#
#   DETECTRON2_DATASETS=/path/to/data scripts/gpu_checks.sh
#   ONLY="cuda-tests train-step bane" scripts/gpu_checks.sh     # sections starting with these
#   BASELINE_BANE=/tmp/bane_old.py scripts/gpu_checks.sh        # time an older BANE side by side
#   DEPLOY_FLAGS=--cuda-graphs scripts/gpu_checks.sh            # extra deploy/benchmark.py flags
#
# Environment: the project's .venv (PY=.venv/bin/python), or a GPU image that has torch, timm,
# scipy, onnx, onnxruntime, opencv and pytest but not detectron2 & co.: then put those in .gpu/site
# (ignored by git), e.g. copied from this checkout's .venv site-packages (pure Python: detectron2,
# fvcore, iopath, yacs, termcolor, omegaconf, hydra, antlr4) plus pycocotools unpacked from the
# wheel for the GPU host's Python. .gpu/data (a small copy of camvid/) is the datasets root when it
# exists and DETECTRON2_DATASETS is unset. The H200 numbers in bench/ and deploy/ READMEs were taken
# exactly that way (48 train / 16 val CamVid images carried).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-output/gpu_checks}
mkdir -p "$OUT"
LOG="$OUT/gpu_checks.log"
PY=${PY:-python3}
[ -d .gpu/site ] && export PYTHONPATH="$PWD/.gpu/site:${PYTHONPATH:-}"
export PYTHONPATH="$PWD/projects/Contextrast:$PWD:${PYTHONPATH:-}"
[ -z "${DETECTRON2_DATASETS:-}" ] && [ -d .gpu/data ] && export DETECTRON2_DATASETS="$PWD/.gpu/data"
export PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore::FutureWarning
WORK=${WORK:-/tmp/contextrast_gpu}
mkdir -p "$WORK"

section() {  # section NAME SECONDS COMMAND...: time-boxed, logged, never fatal
    local name=$1 limit=$2
    shift 2
    if [ -n "${ONLY:-}" ]; then  # run only sections whose name starts with a word of $ONLY
        local want=0 word
        for word in $ONLY; do [[ $name == "$word"* ]] && want=1; done
        [ $want = 1 ] || return 0
    fi
    echo "=== [$(date +%T)] $name (limit ${limit}s): $*" | tee -a "$LOG"
    local t0=$SECONDS
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG" | grep -v "^\[W\|Warning" | tail -n 40
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$LOG"
}

section env 60 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm \
    --format=csv; $PY -c 'import torch, detectron2, onnxruntime, contextrast; \
    print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0), \
    detectron2.__version__, onnxruntime.__version__)'"

section cuda-tests 180 $PY -m pytest -q -p no:cacheprovider tests/gpu

CITY=configs/cityscapes
section train-step-fp32 240 $PY bench/train_step.py --preset hrnet_gpu --warmup 3 --rounds 15 \
    --sync-debug --profile ccl_bane --json "$OUT/train_step_hrnet_fp32.json"
section train-step-amp 200 $PY bench/train_step.py --preset hrnet_gpu --warmup 3 --rounds 15 \
    --sync-debug --json "$OUT/train_step_hrnet_amp.json" SOLVER.AMP.ENABLED True
section bane 200 $PY bench/bane.py --device cuda --rounds 5 --step-preset hrnet_gpu \
    --step-warmup 2 --step-rounds 8 --json "$OUT/bane_cuda.json" \
    ${BASELINE_BANE:+--baseline-bane "$BASELINE_BANE"}

for net in hrnet_w48 ocrnet_hrnet_w48 deeplabv3_r101; do
    section "deploy-bench-$net" 180 $PY deploy/benchmark.py \
        --baseline $CITY/${net}_baseline.yaml --contextrast $CITY/${net}_contextrast.yaml \
        --height 1024 --width 2048 --backends torch-cuda-fp32 torch-cuda-fp16 torch-cuda-bf16 \
        --warmup 5 --rounds 8 --repeats 3 --output-json "$OUT/deploy_${net}.json" ${DEPLOY_FLAGS:-}
done

section export-parity 180 $PY deploy/export_onnx.py --config-file $CITY/hrnet_w48_contextrast.yaml \
    --output "$WORK/hrnet_w48.onnx" --height 512 --width 1024 --dynamic --parity-device cuda

# CamVid: a few AMP iterations of each network's paper config, then multi-scale + flip evaluation.
for net in hrnet_w48 ocrnet_hrnet_w48 deeplabv3_r101; do
    section "camvid-$net" 240 $PY tools/train_net.py \
        --config-file configs/camvid/${net}_contextrast.yaml \
        SOLVER.MAX_ITER 30 SOLVER.IMS_PER_BATCH 8 SOLVER.AMP.ENABLED True TEST.EVAL_PERIOD 0 \
        TEST.AUG.ENABLED True DATALOADER.NUM_WORKERS 6 OUTPUT_DIR "$WORK/camvid_$net"
done
# The lite0 recipe at the paper's CamVid schedule (6000 iterations of batch 16, 360x480 crops,
# AMP; configs/camvid/study/lite0_gpu_*.yaml): CE only and the head recipe (projection heads on
# the DeepLabV3+ head's features, as configs/camvid/lite0_deeplabv3plus_contextrast.yaml), seed
# 0, side by side on the one GPU (lite0 leaves most of it idle), about 10 minutes for both (an
# estimate). Full CamVid (122 MB of PNG) exceeds
# the device upload limit: carry .gpu/camvid_webp (`python scripts/camvid_webp.py pack
# $DETECTRON2_DATASETS/camvid .gpu/camvid_webp`, about 20 MB), unpacked here to PNG.
if [ -d .gpu/camvid_webp ] && [ ! -d "${DETECTRON2_DATASETS:-/nonexistent}/camvid/trainannot" ]; then
    $PY scripts/camvid_webp.py unpack .gpu/camvid_webp "$WORK/data/camvid" >>"$LOG" 2>&1 &&
        export DETECTRON2_DATASETS="$WORK/data"
fi
[ -f output/pretrained/efficientnet_lite0.pth ] ||
    $PY tools/convert_pretrained.py --output output/pretrained/efficientnet_lite0.pth >>"$LOG" 2>&1
LITE0="$PY bench/camvid_study.py --preset lite0_gpu --seeds 0"
section lite0-paper-schedule 600 bash -c "$LITE0 --settings ce --output-dir $WORK/lite0_gpu \
    --report $WORK/ce.md & \
    $LITE0 --settings ccl_bane --tag head --output-dir $WORK/lite0_gpu_head --report $WORK/head.md \
        MODEL.CONTEXTRAST.FEATURE_SOURCE head MODEL.CONTEXTRAST.IN_FEATURES \"['aspp','decoder']\" \
        MODEL.CONTEXTRAST.LAYER_WEIGHTS \"[0.4,1.0]\" & wait; \
    cp $WORK/lite0_gpu/results.json $OUT/camvid_lite0_gpu_ce.json; \
    cp $WORK/lite0_gpu_head/results.json $OUT/camvid_lite0_gpu_head.json"

grep -h "copypaste\|host syncs\|x CE\|scipy/this\|share median\|Parity\|exit" "$LOG" | tail -n 60
