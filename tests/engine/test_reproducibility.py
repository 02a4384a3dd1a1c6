"""Two runs with the same SEED are identical: losses, learning rates, weights and mIoU; and the
output folder records the config and the environment."""

import os

import pytest
import torch
import yaml
from helpers import (
    EVAL_OPTS,
    RUN_OPTS,
    TINY_OPTS,
    assert_same_run,
    demo_cfg,
    read_metrics,
    run,
    tail,
    train_net_cmd,
)

from contextrast.engine.reproducibility import configure_determinism

MAX_ITER = int(RUN_OPTS[RUN_OPTS.index("SOLVER.MAX_ITER") + 1])


def _train(out, opts):
    log = os.path.join(out, "stdout.txt")
    result = run(train_net_cmd(out, opts), log, timeout=600)
    assert result.returncode == 0, tail(log)


def test_same_seed_same_run(reference_run, tmp_path):
    out = str(tmp_path)
    _train(out, RUN_OPTS + EVAL_OPTS)
    assert_same_run(out, reference_run, MAX_ITER)
    miou = read_metrics(out)[MAX_ITER]["sem_seg/mIoU"]
    assert miou == read_metrics(reference_run)[MAX_ITER]["sem_seg/mIoU"]
    for folder in (out, reference_run):
        with open(os.path.join(folder, "config.yaml")) as f:
            cfg = yaml.safe_load(f)
        assert cfg["SEED"] >= 0 and cfg["OUTPUT_DIR"] == folder
        env = open(os.path.join(folder, "env.txt")).read()
        assert "PyTorch" in env and "detectron2" in env and "command:" in env


def test_data_loader_workers_do_not_change_the_run(reference_run, tmp_path):
    """Augmentation is seeded per sample, so worker processes give the very same batches."""
    out = str(tmp_path)
    opts = list(RUN_OPTS)
    opts[opts.index("DATALOADER.NUM_WORKERS") + 1] = "2"
    _train(out, opts)
    assert_same_run(out, reference_run, MAX_ITER)


def test_other_seed_other_run(reference_run, tmp_path):
    out = str(tmp_path)
    _train(out, RUN_OPTS + ["SEED", "7", "SOLVER.MAX_ITER", "2"])
    ours, ref = read_metrics(out), read_metrics(reference_run)
    assert ours[0]["total_loss"] != ref[0]["total_loss"]


@pytest.fixture
def restore_torch_flags():
    flags = (torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)  # fmt: skip
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[2:]


def test_deterministic_switch(restore_torch_flags, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    configure_determinism(demo_cfg(*TINY_OPTS, "DETERMINISTIC", "True"))
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"]
    with pytest.raises(ValueError, match="CUDNN_BENCHMARK"):
        configure_determinism(
            demo_cfg(*TINY_OPTS, "DETERMINISTIC", "True", "CUDNN_BENCHMARK", "True")
        )
