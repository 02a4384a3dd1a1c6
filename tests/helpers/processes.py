"""Real ``tools/train_net.py`` processes for the tests: commands, environment, logs, metrics and
checkpoints of their runs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .configs import TINY_OPTS
from .paths import DEMO_CONFIG, ROOT, TRAIN_NET

# Short runs that checkpoint often and log every iteration's raw losses to metrics.json.
RUN_OPTS = TINY_OPTS + [
    "SOLVER.MAX_ITER", "12",
    "SOLVER.CHECKPOINT_PERIOD", "4",
    "SOLVER.LOG_PERIOD", "1",
    "DATASETS.TEST", "()",
]  # fmt: skip
# Evaluation on the validation split at half resolution (fast); logged at iteration MAX_ITER.
EVAL_OPTS = ["DATASETS.TEST", "('synth_streets_val',)", "INPUT.MIN_SIZE_TEST", "80"]
LOSS_KEYS = ("total_loss", "loss_sem_seg", "loss_contrast", "lr")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for a test's process-group rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> Dict[str, str]:
    """Environment of a test's training process."""
    env = dict(os.environ)
    # One thread per process: the tests share two cores, and a fixed thread count is part of
    # what makes CPU runs bit-identical.
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    env["PYTHONFAULTHANDLER"] = "1"  # a native abort prints every thread's Python stack to the log
    return env


def train_net_cmd(
    output_dir: str, opts: Sequence[str], *, resume=False, extra=(), config: str = DEMO_CONFIG
) -> List[str]:
    """``tools/train_net.py`` on ``config`` (the demo model) with ``opts`` into ``output_dir``."""
    cmd = [sys.executable, TRAIN_NET, "--config-file", config, *extra]
    if resume:
        cmd.append("--resume")
    return cmd + list(opts) + ["OUTPUT_DIR", output_dir]


def run(
    cmd: List[str], log_path: str, timeout: float, cwd: str = ROOT
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session, output to ``log_path``; on timeout kill the whole group
    (spawned workers too)."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"{cmd} timed out after {timeout}s; see {log_path}")
    return subprocess.CompletedProcess(cmd, proc.returncode)


def tail(path: str, n: int = 60) -> str:
    """The last ``n`` lines of a log file."""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-n:])


def read_metrics(output_dir: str) -> Dict[int, dict]:
    """metrics.json as {iteration: entry}; after a resume the last entry of an iteration wins."""
    entries: Dict[int, dict] = {}
    with open(os.path.join(output_dir, "metrics.json")) as f:
        for line in f:
            entry = json.loads(line)
            entries.setdefault(entry["iteration"], {}).update(entry)
    return entries


def last_checkpoint(output_dir: str) -> Optional[str]:
    """The file named by ``last_checkpoint`` in ``output_dir``, or None."""
    path = os.path.join(output_dir, "last_checkpoint")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def wait_for(predicate, timeout: float, proc: Optional[subprocess.Popen] = None) -> None:
    """Poll ``predicate`` until it holds; fail on timeout or when ``proc`` exits first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited ({proc.returncode}) before the condition held")
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def load_checkpoint(path: str) -> dict:
    """A whole checkpoint file (model, optimizer, trainer state)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same_run(out: str, reference: str, iterations: int) -> Tuple[dict, dict]:
    """The run in ``out`` trained bitwise as ``reference`` did: the same logged losses and LR
    (``LOSS_KEYS``) at iterations ``0 .. iterations - 1``, and the same final model and trainer
    state (optimizer momentum, LR scheduler, data stream).

    Returns:
        The two ``model_final.pth`` checkpoints (``out``'s first).
    """
    ours, ref = read_metrics(out), read_metrics(reference)
    assert set(range(iterations)) <= set(ours), sorted(ours)
    for it in range(iterations):
        for key in LOSS_KEYS:
            assert ours[it][key] == ref[it][key], (it, key, ours[it][key], ref[it][key])
    final, ref_final = (
        load_checkpoint(os.path.join(d, "model_final.pth")) for d in (out, reference)
    )
    assert_same_tensors(final["model"], ref_final["model"], "model")
    assert_same_tensors(final["trainer"], ref_final["trainer"], "trainer")
    return final, ref_final


def assert_same_tensors(a: dict, b: dict, what: str) -> None:
    """Bitwise equality of two (nested) state dicts."""
    assert a.keys() == b.keys(), what
    for k in a:
        if isinstance(a[k], dict):
            assert_same_tensors(a[k], b[k], f"{what}.{k}")
        elif isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), f"{what}.{k} differs"
        else:
            assert a[k] == b[k], f"{what}.{k}: {a[k]} != {b[k]}"
