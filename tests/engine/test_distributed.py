"""Distributed training on CPU (gloo): the criterion across processes, and train_net --num-gpus 2.

The contrastive criterion reduces anchors (per-class sums and counts), the negatives' logsumexp
and the per-anchor positive terms over all processes, so two processes holding half a batch each
must compute what one process computes on the whole batch. With every pixel taken as positive and
negative (caps above the pixel count) the comparison is deterministic.
"""

import os

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from helpers import (
    EVAL_OPTS,
    FP32_RTOL,
    INSTANT_TEST_CONFIG,
    assert_close_to_reference,
    free_port,
    load_checkpoint,
    read_metrics,
    run,
    tail,
    train_net_cmd,
)
from helpers.spawn import run_in_process_group

from contextrast.modeling.contrast import ContextrastCriterion
from contextrast.modeling.contrast.anchors import class_anchors, mix_anchors

WORLD = 2
NUM_CLASSES, IGNORE = 4, 255
LAYERS = {"l1": 16, "l2": 8}  # name -> side of the embedding map, shallowest first
CAP = 4 * 16 * 16  # > pixels of any layer: sampling takes every pixel
TIMEOUT_S = 180


def _criterion() -> ContextrastCriterion:
    return ContextrastCriterion(
        in_features=list(LAYERS), num_classes=NUM_CLASSES, ignore_value=IGNORE, temperature=0.1,
        layer_weights=[0.5, 1.0], loss_weight=0.1, warmup_iters=0, anchor_weight_low=0.5,
        anchor_weight_high=0.5, max_positives=CAP, min_negatives=CAP, max_negatives=CAP,
        bane_enabled=True, bane_top_k_ratio=0.5, bane_error_map="fp",
    )  # fmt: skip


def _scenarios():
    """Batches of 4 images; process r of 2 gets images 2r, 2r + 1."""
    g = torch.Generator().manual_seed(0)
    batch, size = 4, 32
    labels = torch.randint(0, NUM_CLASSES, (batch, size, size), generator=g)
    labels[:, :4] = IGNORE
    # Class 0 only in the first half, class NUM_CLASSES - 1 only in the second half.
    skewed = labels.clone()
    skewed[2:][skewed[2:] == 0] = 1
    skewed[:2][skewed[:2] == NUM_CLASSES - 1] = 2
    # The second process holds no labelled pixel at all.
    empty_half = labels.clone()
    empty_half[2:] = IGNORE
    out = {}
    for name, lab in (("balanced", labels), ("class_missing", skewed), ("all_ignore", empty_half)):
        out[name] = {
            "labels": lab,
            "logits": torch.randn(batch, NUM_CLASSES, 8, 8, generator=g),
            "features": {k: torch.randn(batch, 8, s, s, generator=g) for k, s in LAYERS.items()},
        }
    return out


def _compute(scenario, images: slice):
    """Anchors, loss, statistics and embedding gradients on ``images`` of the scenario."""
    criterion = _criterion()
    feats = {k: v[images].clone().requires_grad_(True) for k, v in scenario["features"].items()}
    emb = {k: F.normalize(v, dim=1) for k, v in feats.items()}
    labels, logits = scenario["labels"][images], scenario["logits"][images]
    anchors, present = [], []
    for k, e in emb.items():
        lab = F.interpolate(labels[:, None].float(), size=e.shape[-2:], mode="nearest")[:, 0]
        a, p = class_anchors(e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]), lab.long().flatten(),
                             NUM_CLASSES)  # fmt: skip
        anchors.append(a)
        present.append(p)
    mixed = mix_anchors(anchors, present, 0.5, 0.5)
    losses, stats = criterion(emb, logits, labels)
    losses["loss_contrast"].backward()
    return {
        "anchors": [a.detach() for a in mixed],
        "present": present,
        "loss": losses["loss_contrast"].detach(),
        "stats": {k: v.detach() for k, v in stats.items()},
        "grads": {k: v.grad for k, v in feats.items()},
    }


def _half_batch(rank: int):
    """Every scenario computed on process ``rank``'s half of the batch."""
    half = slice(2 * rank, 2 * rank + 2)
    return {name: _compute(s, half) for name, s in _scenarios().items()}


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("criterion_ddp"))
    return run_in_process_group(
        _half_batch, out, world=WORLD, timeout_s=TIMEOUT_S, what="criterion"
    )


@pytest.mark.parametrize("scenario", ["balanced", "class_missing", "all_ignore"])
def test_two_processes_equal_one_process(two_process_results, scenario):
    single = _compute(_scenarios()[scenario], slice(0, 4))
    ranks = [r[scenario] for r in two_process_results]
    for r, res in enumerate(ranks):
        for a, b in zip(res["anchors"], single["anchors"]):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(res["present"], single["present"]):
            assert torch.equal(a, b)
        torch.testing.assert_close(res["loss"], single["loss"], rtol=1e-5, atol=1e-7)
        for k, v in single["stats"].items():
            if "bane_negatives" in k:  # per-process count: the processes' counts add up
                torch.testing.assert_close(sum(x["stats"][k] for x in ranks), v)
            else:
                torch.testing.assert_close(res["stats"][k], v, rtol=1e-5, atol=1e-7)
        # Each process's gradient is WORLD x the single-process one on its images; DDP's average
        # over processes divides it back.
        for k, g in res["grads"].items():
            # Gradients are ~1e-2: relative to their largest magnitude, not element-wise.
            assert_close_to_reference(
                g / WORLD, single["grads"][k][2 * r : 2 * r + 2], rtol=FP32_RTOL, what=k
            )
    assert single["loss"] > 0


def test_train_net_two_processes_on_cpu(tmp_path):
    out = str(tmp_path)
    log = os.path.join(out, "stdout.txt")
    iters = 4  # SOLVER.MAX_ITER of the instant test
    cmd = train_net_cmd(
        out, ["SOLVER.LOG_PERIOD", "1", *EVAL_OPTS], config=INSTANT_TEST_CONFIG,
        extra=["--num-gpus", str(WORLD), "--dist-url", "auto"],
    )  # fmt: skip
    result = run(cmd, log, timeout=600)
    assert result.returncode == 0, tail(log)
    assert f"World size: {WORLD}" in open(os.path.join(out, "log.txt")).read()
    metrics = read_metrics(out)
    assert set(range(iters)) <= set(metrics)
    assert all(torch.isfinite(torch.tensor(metrics[i]["total_loss"])) for i in range(iters))
    assert "sem_seg/mIoU" in metrics[iters]  # the final evaluation is logged at MAX_ITER
    assert load_checkpoint(os.path.join(out, "model_final.pth"))["iteration"] == iters - 1
    assert f"world_size: {WORLD}" in open(os.path.join(out, "env.txt")).read()


def _distributed_threads() -> int:
    """Native threads of torch.distributed in this process: gloo's I/O loops and work runners and
    the TCP store's loop (torch names them ``gloo_tcp_loop``, ``pt_gloo_runloop``,
    ``pt_tcpstore_uv``)."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                count += f.read().startswith(("gloo", "pt_gloo", "pt_tcpstore"))
        except FileNotFoundError:  # the thread ended between listing and reading
            pass
    return count


def _shutdown_worker(out: str) -> None:
    """Under detectron2's `launch`: use the groups the way training does, then shut down."""
    from detectron2.utils import comm
    from torch.nn.parallel import DistributedDataParallel

    from contextrast.engine import shutdown_distributed

    model = DistributedDataParallel(torch.nn.Linear(4, 2))
    model(torch.ones(3, 4)).sum().backward()
    comm.all_gather(comm.get_rank())  # caches detectron2's global gloo group
    comm.synchronize()
    rank = comm.get_rank()
    del model
    with_groups = _distributed_threads()
    dist.destroy_process_group()  # what torch offers; detectron2 still holds its groups
    after_destroy = _distributed_threads()
    shutdown_distributed()
    counts = (with_groups, after_destroy, _distributed_threads())
    torch.save(counts, os.path.join(out, f"threads{rank}.pt"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads thread names in /proc")
def test_shutdown_releases_every_gloo_thread(tmp_path):
    """After `shutdown_distributed` no gloo thread is left for interpreter exit to tear down.

    A process that exits with gloo threads alive can abort after its work is done (SIGABRT,
    "terminate called without an active exception"): that failed `train_net --num-gpus 2` in CI.
    """
    from detectron2.engine import launch

    launch(
        _shutdown_worker, WORLD, dist_url=f"tcp://127.0.0.1:{free_port()}", args=(str(tmp_path),)
    )
    for r in range(WORLD):
        with_groups, after_destroy, after_shutdown = torch.load(tmp_path / f"threads{r}.pt")
        assert with_groups > 0  # the names are found while the groups exist
        assert after_destroy > 0  # destroy_process_group alone leaves detectron2's groups running
        assert after_shutdown == 0, (with_groups, after_destroy, after_shutdown)
