"""End to end: tools/train_net.py trains a few iterations, then --eval-only on its checkpoint."""

import json
import os
import subprocess
import sys

from helpers import ROOT

TINY = [
    "SOLVER.IMS_PER_BATCH", "2", "INPUT.CROP.SIZE", "(64, 64)", "DATALOADER.NUM_WORKERS", "0",
    "MODEL.CONTEXTRAST.PROJ_DIM", "16", "SOLVER.CHECKPOINT_PERIOD", "100",
]  # fmt: skip


def _run(args, cwd):
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py")] + args
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_then_eval_only(tmp_path):
    out = tmp_path / "run"
    config = os.path.join(ROOT, "configs", "demo", "contextrast.yaml")
    log = _run(
        ["--config-file", config, "SOLVER.MAX_ITER", "4", "OUTPUT_DIR", str(out)] + TINY, tmp_path
    )
    for name in ["model_final.pth", "config.yaml", "metrics.json", "last_checkpoint"]:
        assert (out / name).exists(), name
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    train = [r for r in records if "loss_contrast" in r]
    assert train and all(r["loss_contrast"] > 0 and r["loss_sem_seg"] > 0 for r in train)
    assert "eta" in log or "ETA" in log
    assert "copypaste: mIoU" in log

    eval_out = tmp_path / "eval"
    log = _run(
        ["--config-file", config, "--eval-only", "MODEL.WEIGHTS", str(out / "model_final.pth"),
         "OUTPUT_DIR", str(eval_out)] + TINY,
        tmp_path,
    )  # fmt: skip
    assert "copypaste: mIoU" in log
    assert "Starting training" not in log
