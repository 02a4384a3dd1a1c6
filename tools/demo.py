#!/usr/bin/env python
"""`make demo`: train the demo network with and without Contextrast on the built-in data (CPU).

Both runs use tools/train_net.py with the same seed and schedule, then detectron2's
SemSegEvaluator on the validation split; the script prints both mIoUs side by side.

    python tools/demo.py [--output-dir output/demo] [KEY VALUE ...]
"""

import argparse
import logging
import os
import subprocess
import sys
import time

from contextrast.engine.metrics_file import last_eval_record

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RUNS = {"baseline (CE only)": "baseline.yaml", "Contextrast (CE + CCL + BANE)": "contextrast.yaml"}
logger = logging.getLogger("contextrast.demo")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--output-dir", default=os.path.join(ROOT, "output", "demo"))
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for both runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="[demo] %(message)s")

    results, start = {}, time.time()
    for label, config in RUNS.items():
        out = os.path.join(args.output_dir, os.path.splitext(config)[0])
        cmd = [
            sys.executable, os.path.join(ROOT, "tools", "train_net.py"),
            "--config-file", os.path.join(ROOT, "configs", "demo", config),
            "OUTPUT_DIR", out,
        ] + args.opts  # fmt: skip
        logger.info("training %s -> %s", label, out)
        t0 = time.time()
        subprocess.run(cmd, check=True)
        metrics = last_eval_record(os.path.join(out, "metrics.json"))
        results[label] = (metrics, time.time() - t0)

    width = max(len(k) for k in results)
    lines = [
        "",
        f"{'model':<{width}}  {'mIoU':>6}  {'pixel acc':>9}  {'wall time':>9}",
    ]
    for label, (m, seconds) in results.items():
        lines.append(
            f"{label:<{width}}  {m['sem_seg/mIoU']:6.2f}  {m['sem_seg/pACC']:9.2f}  {seconds:8.0f}s"
        )
    lines.append(
        f"total wall time {time.time() - start:.0f}s; logs and checkpoints in {args.output_dir}"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
