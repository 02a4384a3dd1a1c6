"""Cityscapes end to end: tools/train_net.py trains the shipped Cityscapes config (at toy size)
on a generated Cityscapes tree, then ``--eval-only`` scores it with the official cityscapesScripts
evaluation (IoU and iIoU) and keeps the label-id PNGs a test-server submission is made of."""

import math
import os
import re
import sys
from typing import Dict

import numpy as np
import pytest
from helpers import CONFIGS_DIR, TINY_OPTS, TRAIN_NET, run, tail
from helpers.cityscapes import CITYSCAPES_H, CITYSCAPES_W, build_cityscapes_tree, eval_label_ids
from PIL import Image

pytest.importorskip("cityscapesscripts", reason="the [cityscapes] extra is not installed")

CONFIG = os.path.join(CONFIGS_DIR, "cityscapes", "lite0_deeplabv3plus_contextrast.yaml")
# The shipped config on the CPU, from random weights, at the generated frames' size (64x128).
CITYSCAPES_TINY_OPTS = TINY_OPTS + [
    "MODEL.DEVICE", "cpu",
    "MODEL.WEIGHTS", "",
    "INPUT.MIN_SIZE_TRAIN", "(64, 96)",
    "INPUT.MAX_SIZE_TRAIN", "256",
    "INPUT.MIN_SIZE_TEST", "64",
    "INPUT.MAX_SIZE_TEST", "128",
    "SOLVER.MAX_ITER", "4",
    "SOLVER.CHECKPOINT_PERIOD", "100",
]  # fmt: skip
VAL, TEST = "cityscapes_fine_sem_seg_val", "cityscapes_fine_sem_seg_test"
COPYPASTE = re.compile(r"copypaste: (.*)$")


def _results(log: str) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{dataset: {task: {metric: value}}} from detectron2's "copypaste" lines of ``log``."""
    results: Dict[str, Dict[str, Dict[str, float]]] = {}
    dataset = task = keys = None
    for line in log.splitlines():
        found = re.search(r"Evaluation results for (\S+) in csv format", line)
        if found:
            dataset = found.group(1)
            continue
        found = COPYPASTE.search(line)
        if not found or dataset is None:
            continue
        text = found.group(1)
        if text.startswith("Task: "):
            task, keys = text[len("Task: ") :], None
        elif keys is None:
            keys = text.split(",")
        else:
            values = [float(v) for v in text.split(",")]
            results.setdefault(dataset, {})[task] = dict(zip(keys, values))
    return results


def _train_net(opts, log_path, flags=()):
    cmd = [sys.executable, TRAIN_NET, "--config-file", CONFIG, *flags, *opts]
    proc = run(cmd, log_path, timeout=300)
    assert proc.returncode == 0, tail(log_path)
    with open(log_path, errors="replace") as f:
        return f.read()


def test_cityscapes_train_then_official_eval(tmp_path, monkeypatch):
    base = build_cityscapes_tree(tmp_path / "datasets", {"train": 4, "val": 2, "test": 2})
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    out = tmp_path / "run"
    log = _train_net(CITYSCAPES_TINY_OPTS + ["OUTPUT_DIR", str(out)], str(tmp_path / "train.log"))
    assert (out / "model_final.pth").exists()
    # The evaluation after training runs both evaluators on the val split.
    assert set(_results(log)[VAL]) == {"sem_seg", "cityscapes_sem_seg"}, tail(str(out / "log.txt"))

    eval_out = tmp_path / "eval"
    log = _train_net(
        CITYSCAPES_TINY_OPTS
        + ["MODEL.WEIGHTS", str(out / "model_final.pth"), "DATASETS.TEST", f"('{VAL}', '{TEST}')"]
        + ["OUTPUT_DIR", str(eval_out)],
        str(tmp_path / "eval.log"),
        flags=["--eval-only"],
    )
    assert "Starting training" not in log
    # cityscapesScripts' own report (per-class table, then its averages) is in the log.
    assert "classes          IoU      nIoU" in log and "Score Average" in log
    official = _results(log)[VAL]["cityscapes_sem_seg"]
    print(f"Cityscapes (official scripts), {VAL}: mIoU {official['IoU']:.2f}, "
          f"iIoU {official['iIoU']:.2f}")  # fmt: skip
    for metric in ("IoU", "iIoU", "IoU_sup", "iIoU_sup"):
        assert math.isfinite(official[metric]) and 0.0 <= official[metric] <= 100.0, official

    # The submission files: one label-id PNG per test image, named after its frame.
    kept = eval_out / "inference" / TEST / "cityscapes_labelIds"
    frames = sorted(p.name[: -len("_leftImg8bit.png")] for p in base.glob("leftImg8bit/test/*/*"))
    assert sorted(p.name for p in kept.iterdir()) == [f"{f}_leftImg8bit_pred.png" for f in frames]
    for path in kept.iterdir():
        ids = np.asarray(Image.open(path))
        assert ids.shape == (CITYSCAPES_H, CITYSCAPES_W) and set(np.unique(ids)) <= set(
            eval_label_ids()
        ), path
