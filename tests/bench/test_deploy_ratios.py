"""bench/deploy_ratios.sh on the demo networks: real 3-iteration trainings, exports and ONNX
Runtime sessions, quick timing flags. Checks the script's plumbing, not its timings."""

import json
import subprocess
import sys

from helpers import ROOT, subprocess_env


def test_deploy_ratios_times_the_demo_pair_and_skips_what_it_lacks(tmp_path):
    out = tmp_path / "out"
    env = subprocess_env()
    env.update(
        PYTHON=sys.executable,
        NETWORKS="",  # the paper networks take minutes each
        BENCH_FLAGS="--warmup 1 --rounds 2 --repeats 1 --min-time 0",
        DETECTRON2_DATASETS=str(tmp_path / "no_datasets"),
    )
    proc = subprocess.run(["bash", "bench/deploy_ratios.sh", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no camvid/ under DETECTRON2_DATASETS: CamVid parts skipped" in proc.stderr
    for threads in ("1", "default"):
        report = json.loads((out / f"lat_demo_t{threads}.json").read_text())
        assert [r["backend"] for r in report["ratios"]] == ["torch-cpu", "ort-cpu"]
        assert all(r["median"] > 0 and r["paired_median"] > 0 for r in report["ratios"])
        weights = report["settings"]["weights"]
        for name in ("baseline", "contextrast"):
            assert weights[name] == str(out / "demo_ckpt" / name / "model_final.pth")
        assert (out / f"lat_demo_t{threads}.md").read_text().count("| torch-cpu |") == 1
    commands = (out / "commands.txt").read_text().splitlines()
    assert [c.split()[1] for c in commands] == ["tools/train_net.py"] * 2 + [
        "deploy/benchmark.py"
    ] * 2
