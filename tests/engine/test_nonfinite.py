"""NaN/Inf losses in real (in-process) training: the error, and the optional skip mode.

Faults are injected through the data (a batch of NaN images at chosen iterations) or through a
config whose contrastive loss overflows; the trainer, model and guard are the real ones.
"""

import os

import pytest
import torch
from detectron2.engine import HookBase
from helpers import TINY_OPTS, demo_cfg

from contextrast.engine import ContextrastTrainer, NonFiniteLossError

RUN = ["SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "2", "DATASETS.TEST", "()"]


class _NaNImagesAt:
    """The real training loader, with every image of the given iterations' batches set to NaN."""

    def __init__(self, loader, iterations):
        self.loader, self.iterations = loader, set(iterations)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i in self.iterations:
                batch = [dict(x, image=torch.full(x["image"].shape, float("nan"))) for x in batch]
            yield batch


class _Snapshots(HookBase):
    """Parameters, buffers and optimizer state after every iteration."""

    def __init__(self):
        self.after = {}

    def after_step(self):
        model = self.trainer.model
        self.after[self.trainer.iter] = {
            "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "momentum": [
                s["momentum_buffer"].clone()
                for s in self.trainer.optimizer.state.values()
                if "momentum_buffer" in s
            ],
        }


def _trainer(tmp_path, *opts, nan_at=()):
    cfg = demo_cfg(*TINY_OPTS, *RUN, *opts, output_dir=str(tmp_path))
    trainer = ContextrastTrainer(cfg)
    trainer.resume_or_load(resume=False)
    inner = trainer._trainer
    inner.data_loader = _NaNImagesAt(inner.data_loader, nan_at)
    snapshots = _Snapshots()
    trainer.register_hooks([snapshots])
    return trainer, snapshots


def _finite(tensors) -> bool:
    return all(torch.isfinite(v).all() for v in tensors if v.is_floating_point())


def test_error_names_losses_iteration_and_checkpoint(tmp_path):
    trainer, _ = _trainer(tmp_path, nan_at=[3])
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train()
    msg = str(info.value)
    checkpoint = os.path.join(str(tmp_path), "model_0000001.pth")  # CHECKPOINT_PERIOD 2
    assert "at iteration 3" in msg and "loss_sem_seg" in msg and "loss_contrast" in msg
    assert checkpoint in msg and "--resume" in msg and os.path.isfile(checkpoint)
    # The NaN update was never applied (BN running stats of the dead process may hold NaN).
    assert _finite(trainer.model.parameters())


def test_error_names_only_the_non_finite_loss(tmp_path):
    # A temperature that underflows to 0 in float32: only the contrastive loss overflows.
    trainer, _ = _trainer(tmp_path, "MODEL.CONTEXTRAST.TEMPERATURE", "1e-300")
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train()
    msg = str(info.value)
    assert "Non-finite loss loss_contrast at iteration 0" in msg
    assert "No checkpoint was saved" in msg


def test_skip_mode_drops_the_update_and_continues(tmp_path):
    trainer, snaps = _trainer(
        tmp_path, "SOLVER.NONFINITE_LOSS", "skip", "SOLVER.NONFINITE_MAX_SKIPS", "2", nan_at=[2, 3]
    )
    trainer.train()
    assert trainer._trainer.skipped_iterations == 2
    before, after = snaps.after[1], snaps.after[3]
    for k, v in before["state"].items():  # parameters and BN running statistics untouched
        assert torch.equal(after["state"][k], v), k
    for a, b in zip(before["momentum"], after["momentum"]):
        assert torch.equal(a, b)
    last = snaps.after[max(snaps.after)]["state"]
    assert any(not torch.equal(last[k], v) for k, v in after["state"].items())  # trains again
    assert _finite(trainer.model.state_dict().values())
    assert os.path.isfile(os.path.join(str(tmp_path), "model_final.pth"))


def test_skip_mode_stops_after_too_many_consecutive_skips(tmp_path):
    trainer, _ = _trainer(
        tmp_path, "SOLVER.NONFINITE_LOSS", "skip", "SOLVER.NONFINITE_MAX_SKIPS", "2",
        nan_at=[1, 2, 3],
    )  # fmt: skip
    with pytest.raises(NonFiniteLossError, match="at iteration 3 .*after 2 consecutive skipped"):
        trainer.train()


def test_invalid_nonfinite_mode(tmp_path):
    with pytest.raises(ValueError, match="SOLVER.NONFINITE_LOSS"):
        ContextrastTrainer(demo_cfg(*TINY_OPTS, *RUN, "SOLVER.NONFINITE_LOSS", "ignore"))
