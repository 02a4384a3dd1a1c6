"""Preemption with real processes: SIGTERM -> checkpoint of the iteration reached, exit status 75,
and ``--resume`` continues exactly (same losses, learning rates, final weights and optimizer
state as an uninterrupted run).

The job is preempted twice, each time started differently: as two srun tasks (SLURM's variables
simulated on this machine, as ``srun --ntasks 2`` sets them; SLURM signals every task), then with
detectron2's launch (``--num-gpus 2``) signalled in its parent process only (as ``kill <pid>``
does), and it finishes under torchrun. The reference is an uninterrupted ``--num-gpus 2`` run.
"""

import os
import signal
import subprocess
import sys

import pytest
from helpers import (
    ROOT,
    RUN_OPTS,
    assert_same_run,
    free_port,
    last_checkpoint,
    load_checkpoint,
    read_metrics,
    run,
    subprocess_env,
    tail,
    train_net_cmd,
    wait_for,
)

from contextrast.engine import PREEMPTED_EXIT_CODE

WORLD = 2
# No periodic checkpoint before the end: every checkpoint a preempted run leaves is its own.
OPTS = RUN_OPTS + ["SOLVER.IMS_PER_BATCH", "4", "SOLVER.CHECKPOINT_PERIOD", "1000"]
MAX_ITER = int(RUN_OPTS[RUN_OPTS.index("SOLVER.MAX_ITER") + 1])
LAUNCH = ["--num-gpus", str(WORLD), "--dist-url", "auto"]


def _logged(out: str) -> int:
    path = os.path.join(out, "metrics.json")
    return open(path).read().count("\n") if os.path.exists(path) else 0


def _start(cmd, log, env=None):
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=ROOT, env=env or subprocess_env(), stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip


def _slurm_tasks(out: str, log: str):
    """Two `tools/train_net.py` processes with the variables srun sets for a 2-task step."""
    port = str(free_port())
    procs = []
    for rank in range(WORLD):
        env = dict(subprocess_env(), SLURM_JOB_ID="4242", SLURM_STEP_NUM_TASKS=str(WORLD),
                   SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NODEID="0",
                   SLURM_STEP_TASKS_PER_NODE=str(WORLD), SLURM_STEP_NODELIST="localhost",
                   MASTER_PORT=port)  # fmt: skip
        procs.append(_start(train_net_cmd(out, OPTS, resume=True), log, env))
    return procs


def _preempt(procs, out: str, after: int, signalled) -> int:
    """Send SIGTERM to ``signalled`` once ``after`` iterations are logged; return the iteration
    the checkpoint holds."""
    try:
        wait_for(lambda: _logged(out) >= after, timeout=600, proc=procs[0])
        for p in signalled:
            os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.wait(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    codes = [p.returncode for p in procs]
    assert codes == [PREEMPTED_EXIT_CODE] * len(procs), (
        codes,
        tail(os.path.join(out, "stdout.txt")),
    )
    name = last_checkpoint(out)
    iteration = load_checkpoint(os.path.join(out, name))["iteration"]
    assert name == f"model_{iteration:07d}.pth"
    # The checkpoint holds the last iteration trained.
    assert iteration == max(read_metrics(out)) >= after - 1
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    return iteration


@pytest.fixture(scope="module")
def reference_2p(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("reference_2p"))
    log = os.path.join(out, "stdout.txt")
    result = run(train_net_cmd(out, OPTS, extra=LAUNCH), log, timeout=600)
    assert result.returncode == 0, tail(log)
    return out


def test_sigterm_checkpoints_and_resume_continues_the_run(reference_2p, tmp_path):
    out = str(tmp_path)
    log = os.path.join(out, "stdout.txt")
    procs = _slurm_tasks(out, log)
    first = _preempt(procs, out, after=3, signalled=procs)  # SLURM signals every task
    text = open(log).read()
    assert f"Preempted (SIGTERM) after iteration {first}" in text

    parent = _start(train_net_cmd(out, OPTS, resume=True, extra=LAUNCH), log)
    second = _preempt([parent], out, after=first + 4, signalled=[parent])  # the parent only
    assert second > first
    assert f"Starting training from iteration {first + 1}" in open(log).read()

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(WORLD)] + train_net_cmd(out, OPTS, resume=True)[1:]  # fmt: skip
    result = run(torchrun, log, timeout=600)
    assert result.returncode == 0, tail(log)
    assert f"Starting training from iteration {second + 1}" in open(log).read()

    final, ref_final = assert_same_run(out, reference_2p, MAX_ITER)
    assert final["iteration"] == ref_final["iteration"] == MAX_ITER - 1


def test_requeue_says_why_it_did_not_happen(monkeypatch, caplog, tmp_path):
    from contextrast.engine.preemption import requeue_slurm_job

    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    with caplog.at_level("WARNING", logger="contextrast.engine.preemption"):
        assert not requeue_slurm_job()
    assert "not a SLURM job" in caplog.text
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("PATH", str(tmp_path))  # no scontrol on this machine's PATH
    with caplog.at_level("WARNING", logger="contextrast.engine.preemption"):
        assert not requeue_slurm_job()
    assert "scontrol requeue 4242 failed" in caplog.text
