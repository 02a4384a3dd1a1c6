"""End to end: tools/train_net.py trains a few iterations, then --eval-only on its checkpoint."""

import json

from helpers import INSTANT_TEST_CONFIG, run, tail, train_net_cmd


def _run(output_dir, cwd, opts=(), extra=()):
    """train_net on the instant-test config from ``cwd``; returns its output."""
    log = str(cwd / f"{output_dir.name}.log")
    cmd = train_net_cmd(str(output_dir), opts, extra=extra, config=INSTANT_TEST_CONFIG)
    result = run(cmd, log, timeout=600, cwd=str(cwd))  # another folder than the repository's
    assert result.returncode == 0, tail(log)
    with open(log, errors="replace") as f:
        return f.read()


def test_train_then_eval_only(tmp_path):
    out = tmp_path / "run"
    log = _run(out, tmp_path)
    for name in ["model_final.pth", "config.yaml", "metrics.json", "last_checkpoint"]:
        assert (out / name).exists(), name
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    train = [r for r in records if "loss_contrast" in r]
    assert train and all(r["loss_contrast"] > 0 and r["loss_sem_seg"] > 0 for r in train)
    assert "eta" in log or "ETA" in log
    assert "copypaste: mIoU" in log

    weights = ["MODEL.WEIGHTS", str(out / "model_final.pth")]
    log = _run(tmp_path / "eval", tmp_path, weights, extra=["--eval-only"])
    assert "copypaste: mIoU" in log
    assert "Starting training" not in log
