"""How training processes start: detectron2's launch, torchrun, srun (contextrast.engine.launch).

The real-process test trains the demo network three ways on the same global batch of 4 images:
``torchrun --nproc_per_node 2``, ``--num-gpus 2`` (detectron2's launch) and one process. The two
2-process runs must be bitwise identical (same ranks, same data, same collectives). All three start
from the same saved weights; the weight updates of one process must match those of two up to
float32 rounding (relative to the updates), with the settings under which the global-batch training
is exactly the sum of its halves: FrozenBN (per-process BatchNorm statistics would differ), no
dropout, deterministic BANE tie-break, every pixel a positive and a negative (sampling caps
above the pixel count), and the cross-entropy weight 0 (each process averages its cross entropy
over its own valid pixels, which differs from the average over the global batch).
"""

import os
import subprocess
import sys

import pytest
import torch
from detectron2.engine import default_argument_parser
from detectron2.modeling import build_model
from helpers import (
    FP32_RTOL,
    ROOT,
    TINY_OPTS,
    UPDATE_RTOL,
    assert_close_to_reference,
    assert_same_run,
    assert_updates_close,
    demo_cfg,
    load_checkpoint,
    read_metrics,
    run,
    subprocess_env,
    tail,
    train_net_cmd,
)

from contextrast.engine.launch import check_launch_args, detect_distributed_env

ITERS = 4
FLAGS = ("num_gpus", "num_machines", "machine_rank", "dist_url")
EXACT_OPTS = TINY_OPTS + [
    "SOLVER.IMS_PER_BATCH", "4",
    "SOLVER.MAX_ITER", str(ITERS),
    "SOLVER.LOG_PERIOD", "1",
    "DATASETS.TEST", "()",
    "MODEL.RESNETS.NORM", "FrozenBN",
    "MODEL.SEM_SEG_HEAD.NORM", "FrozenBN",
    "MODEL.SEM_SEG_HEAD.ASPP_DROPOUT", "0.0",
    "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT", "0.0",
    "MODEL.CONTEXTRAST.BANE.TIE_BREAK", "raster",
    "MODEL.CONTEXTRAST.MAX_POSITIVES", "4096",
    "MODEL.CONTEXTRAST.MIN_NEGATIVES", "4096",
    "MODEL.CONTEXTRAST.MAX_NEGATIVES", "4096",
]  # fmt: skip
# Losses of the two trainings: float32 rounding (~1e-7) plus, after a BANE negative set that a
# logit tie flipped (helpers.UPDATE_RTOL), 8e-6 measured.
LOSS_RTOL = 1e-4
# --standalone: a rendezvous on a free local port.
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def _parse(*argv):
    parser = default_argument_parser()
    return parser.parse_args(list(argv)), {k: parser.get_default(k) for k in FLAGS}


def test_environment_detection():
    torchrun = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2",
                "MASTER_ADDR": "node0", "MASTER_PORT": "29400",
                "TORCHELASTIC_RUN_ID": "x"}  # fmt: skip
    env = detect_distributed_env(torchrun)
    assert (env.source, env.rank, env.local_rank, env.world_size, env.local_world_size) == (
        "torchrun", 3, 1, 4, 2,
    )  # fmt: skip
    assert (env.master_addr, env.master_port) == ("node0", 29400)
    # An srun step of 2 nodes x 4 tasks (what srun sets; the node list is plain, no scontrol).
    slurm = {"SLURM_STEP_NUM_TASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
             "SLURM_NODEID": "1", "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
             "SLURM_STEP_NODELIST": "gpu-a,gpu-b", "SLURM_JOB_ID": "123457"}  # fmt: skip
    env = detect_distributed_env(slurm)
    assert (env.source, env.rank, env.local_rank, env.world_size, env.local_world_size) == (
        "slurm", 5, 1, 8, 4,
    )  # fmt: skip
    assert env.master_addr == "gpu-a" and 20000 <= env.master_port < 40000
    uneven = dict(slurm, SLURM_STEP_TASKS_PER_NODE="4,3", SLURM_NODEID="1", MASTER_PORT="1234")
    assert detect_distributed_env(uneven).local_world_size == 3
    assert detect_distributed_env(uneven).master_port == 1234
    # The batch script itself (SLURM_NTASKS but no step variables) is one process: launch.
    assert detect_distributed_env({"SLURM_NTASKS": "8", "SLURM_PROCID": "0"}) is None
    assert detect_distributed_env({}) is None
    with pytest.raises(ValueError, match="scontrol"):
        detect_distributed_env(dict(slurm, SLURM_STEP_NODELIST="gpu-[a-b]"))


def test_launch_flags_that_contradict_torchrun_are_named():
    env = detect_distributed_env({"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "8"})
    check_launch_args(*_parse("--config-file", "c.yaml", "--resume"), env)  # nothing to drop
    with pytest.raises(SystemExit, match=r"drop --num-gpus \(--nproc_per_node") as e:
        check_launch_args(*_parse("--num-gpus", "8"), env)
    assert "--num-machines" not in str(e.value)
    with pytest.raises(SystemExit, match=r"--num-machines.*--machine-rank.*--dist-url"):
        check_launch_args(*_parse("--num-machines", "2", "--machine-rank", "1",
                                  "--dist-url", "tcp://h:1"), env)  # fmt: skip


def test_torchrun_with_num_gpus_stops_with_the_flag_to_drop(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1"]
    cmd += train_net_cmd(str(tmp_path), TINY_OPTS, extra=["--num-gpus", "2"])[1:]
    result = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode != 0
    assert "torchrun started this process (rank 0 of 1): drop --num-gpus" in result.stderr
    assert not os.path.exists(tmp_path / "metrics.json")  # stopped before training


@pytest.fixture(scope="module")
def initial_weights(tmp_path_factory) -> str:
    """The weights every run of :func:`three_runs` starts from (``MODEL.WEIGHTS``), so that the
    test knows what the training changed."""
    torch.manual_seed(0)
    model = build_model(demo_cfg(*EXACT_OPTS))
    path = str(tmp_path_factory.mktemp("init") / "init.pth")
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, initial_weights):
    opts = EXACT_OPTS + ["MODEL.WEIGHTS", initial_weights]
    outs = {"init": initial_weights}
    for name, extra in (("torchrun", None), ("launch", ["--num-gpus", "2", "--dist-url", "auto"]),
                        ("single", [])):  # fmt: skip
        out = str(tmp_path_factory.mktemp(name))
        log = os.path.join(out, "stdout.txt")
        if extra is None:
            cmd = TORCHRUN + train_net_cmd(out, opts)[1:]
        else:
            cmd = train_net_cmd(out, opts, extra=extra)
        result = run(cmd, log, timeout=600)
        assert result.returncode == 0, tail(log)
        outs[name] = out
    return outs


def test_torchrun_equals_launch_bitwise(three_runs):
    a, b = (three_runs[k] for k in ("torchrun", "launch"))
    assert "World size: 2" in open(os.path.join(a, "log.txt")).read()
    assert_same_run(a, b, ITERS)


def test_two_processes_equal_one_process_on_the_global_batch(three_runs):
    two, one = read_metrics(three_runs["torchrun"]), read_metrics(three_runs["single"])
    for it in range(ITERS):
        assert_close_to_reference(two[it]["lr"], one[it]["lr"], rtol=FP32_RTOL, what=f"lr@{it}")
        for key in ("total_loss", "loss_contrast"):
            assert_close_to_reference(
                two[it][key], one[it][key], rtol=LOSS_RTOL, what=f"{key}@{it}"
            )
    final = [load_checkpoint(os.path.join(three_runs[k], "model_final.pth"))["model"]
             for k in ("torchrun", "single")]  # fmt: skip
    initial = load_checkpoint(three_runs["init"])["model"]
    # The runs sum the global batch's gradients in another order: compare what training changed,
    # relative to the size of that change (the weights are ~1000x larger than 4 steps' updates).
    for name, ref in final[1].items():
        if ref.is_floating_point():
            assert_updates_close(
                final[0][name], ref, initial[name], rtol=UPDATE_RTOL, steps=ITERS, what=name
            )
    moved = [n for n, v in final[1].items() if v.is_floating_point() and (v != initial[n]).any()]
    assert any(n.startswith("backbone.") for n in moved) and any(
        n.startswith("contrast_heads.") for n in moved
    )  # the comparison covers trained weights
    assert one[ITERS - 1]["total_loss"] != one[0]["total_loss"]  # the weights did change
