"""bench/study_ablations.py: the paired ablation table from finished (or committed) study runs."""

import json
import os
import subprocess
import sys

from helpers import ROOT

SCRIPT = os.path.join(ROOT, "bench", "study_ablations.py")
BASE_OPTS = ["MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", "600"]


def _result(seed, miou, extra=()):
    per_class = {c: miou for c in ("Sky", "Road", "Pole", "SignSymbol", "Bicyclist")}
    per_class["Pole"] = miou / 10
    return {"seed": seed, "opts": BASE_OPTS + list(extra), "command": "train_net.py", "mIoU": miou,
            "per_class_IoU": per_class}  # fmt: skip


def _write(folder, setting, seed, result, committed):
    """A run as a study writes it (<run>/result.json) or as it is committed (<run>.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{setting}_seed{seed}.json"
    if not committed:
        (folder / f"{setting}_seed{seed}").mkdir()
        path = folder / f"{setting}_seed{seed}" / "result.json"
    path.write_text(json.dumps(result))


def _run(*args):
    cmd = [sys.executable, SCRIPT, *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_rows_are_paired_by_seed_against_default_and_ce(tmp_path):
    base = tmp_path / "lite0"
    for seed in (0, 1):
        _write(base, "ce", seed, _result(seed, 50.0 + seed), committed=True)
        _write(base, "ccl_bane", seed, _result(seed, 48.0 + 2 * seed), committed=False)
        extra = ["MODEL.CONTEXTRAST.BANE.ERROR_MAP", "fn"]
        _write(base.parent / "lite0_fn", "ccl_bane", seed, _result(seed, 49.0 + 3 * seed, extra),
               committed=seed == 0)  # fmt: skip
    out = tmp_path / "ablations.md"
    screen = tmp_path / "screen.json"  # as bench/grad_balance_screen.py writes it
    rows = [{"group": "backbone", "ratio": 0.25, "cosine": 0.4}]
    at_init = [dict(rows[0], ratio=9.0)]
    cells = [{"variant": "fn_screen", "weights_name": "it200", "rows": rows},
             {"variant": "fn_screen", "weights_name": "init", "rows": at_init}]  # fmt: skip
    screen.write_text(json.dumps({"cells": cells}))
    proc = _run("--base", base, "--variants", "fn", "missing", "--seeds", 0, 1, "--output", out,
                "--screen", screen, "--screen-names", "fn=fn_screen")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "| CE only | - | 0, 1 | 50.50 +- 0.71 | - | - | - | - | 5.0 / 50.5 / 50.5 |" in text
    # default: 48, 50 against CE 50, 51 -> -2, -1; unpaired -1.5 +- sqrt(2/2 + 0.5/2)
    assert (
        "| default | - | 0, 1 | 49.00 +- 1.41 | -1.50 +- 0.71 (0/2) | -1.50 +- 1.12 | - | - |"
        in text
    )
    # fn: 49, 52 against CE -> -1, +1; against default -> +1, +2
    row = "| fn | `MODEL.CONTEXTRAST.BANE.ERROR_MAP=fn` | 0, 1 | 50.50 +- 2.12 "
    assert (
        row + "| +0.00 +- 1.41 (1/2) | +0.00 +- 1.58 | +1.50 +- 0.71 (2/2) | 0.25 / +0.40 |" in text
    )
    assert "missing" not in text.split("\n\n")[0]  # a variant without runs is left out
    assert "variant missing: no finished ccl_bane run" in proc.stderr


def test_variant_that_does_not_extend_the_default_overrides_is_refused(tmp_path):
    base = tmp_path / "lite0"
    _write(base, "ccl_bane", 0, _result(0, 48.0), committed=True)
    other = _result(0, 47.0)
    other["opts"] = ["MODEL.DEVICE", "cpu", "SOLVER.MAX_ITER", "300"]
    _write(base.parent / "lite0_short", "ccl_bane", 0, other, committed=True)
    proc = _run("--base", base, "--variants", "short", "--seeds", 0)
    assert proc.returncode != 0
    assert "does not extend the default run's overrides" in proc.stderr


def test_missing_default_runs_name_the_folder(tmp_path):
    proc = _run("--base", tmp_path / "nowhere", "--variants", "fn")
    assert proc.returncode != 0 and "no ccl_bane runs of seeds [0, 1, 2] under" in proc.stderr
    assert str(tmp_path / "nowhere") in proc.stderr


def test_variant_of_a_recipe_moved_into_yaml_shows_the_keys_that_differ(tmp_path):
    base = tmp_path / "lite0"
    recipe = ["MODEL.DEVICE", "cpu", "MODEL.CONTEXTRAST.PROJ_DIM", "128", "SOLVER.IMS_PER_BATCH",
              "8", "SOLVER.BASE_LR", "0.02", "SOLVER.MAX_ITER", "600", "SOLVER.WARMUP_ITERS", "20",
              "SOLVER.CHECKPOINT_PERIOD", "200", "INPUT.MIN_SIZE_TRAIN", "(288, 432)",
              "INPUT.CROP.SIZE", "(240, 320)", "TEST.EVAL_PERIOD", "0", "DATALOADER.NUM_WORKERS",
              "1", "MODEL.WEIGHTS", "output/pretrained/efficientnet_lite0.pth"]  # fmt: skip
    paper = "configs/camvid/lite0_deeplabv3plus_contextrast_paper.yaml"  # the recipe's base
    default = dict(_result(0, 48.0), config=paper)
    default["opts"] = ["SEED", "0"] + recipe
    _write(base, "ccl_bane", 0, default, committed=True)
    variant = dict(_result(0, 49.0), config="configs/camvid/study/lite0_ccl_bane.yaml")
    variant["opts"] = ["SEED", "0", "MODEL.CONTEXTRAST.START_ITER", "100"]
    _write(base.parent / "lite0_start", "ccl_bane", 0, variant, committed=True)
    proc = _run("--base", base, "--variants", "start", "--seeds", 0)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| start | `MODEL.CONTEXTRAST.START_ITER=100` | 0 | 49.00 +- 0.00 " in proc.stdout
