"""Crash safety with real processes: SIGKILL mid-run, and SIGKILL in the middle of a save.

Both resumed runs must end exactly where the uninterrupted reference run ends: same metrics for
every iteration (losses, learning rate), bitwise-identical final weights and optimizer state.
"""

import glob
import os
import shutil
import signal
import subprocess
import sys

from helpers import (
    LOSS_KEYS,
    ROOT,
    RUN_OPTS,
    assert_same_run,
    assert_same_tensors,
    last_checkpoint,
    load_checkpoint,
    read_metrics,
    run,
    subprocess_env,
    tail,
    train_net_cmd,
    wait_for,
)

MAX_ITER = int(RUN_OPTS[RUN_OPTS.index("SOLVER.MAX_ITER") + 1])
PERIOD = int(RUN_OPTS[RUN_OPTS.index("SOLVER.CHECKPOINT_PERIOD") + 1])


def _checkpoint_iteration(name: str) -> int:
    return int(name[len("model_") : -len(".pth")])


def _logged_iterations(out: str) -> int:
    """Complete lines in metrics.json of a running job (the last one may be half written)."""
    path = os.path.join(out, "metrics.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return f.read().count("\n")


def _assert_continues_reference(out: str, reference: str, resumed_from: int) -> None:
    final, ref_final = assert_same_run(out, reference, MAX_ITER)
    assert any(it > resumed_from for it in read_metrics(out))
    assert final["iteration"] == ref_final["iteration"] == MAX_ITER - 1


def test_sigkill_then_resume_continues_the_run(reference_run, tmp_path):
    out = str(tmp_path)
    log = os.path.join(out, "stdout.txt")
    first_checkpoint = f"model_{PERIOD - 1:07d}.pth"
    with open(log, "ab") as f:
        proc = subprocess.Popen(
            train_net_cmd(out, RUN_OPTS), cwd=ROOT, env=subprocess_env(), stdout=f,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        # Kill once the first checkpoint exists and training went on past it.
        def past_checkpoint():
            return last_checkpoint(out) is not None and _logged_iterations(out) > PERIOD + 1

        wait_for(past_checkpoint, timeout=600, proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(out, "model_final.pth"))
    resume_name = last_checkpoint(out)
    resume_iter = _checkpoint_iteration(resume_name)
    assert resume_name >= first_checkpoint and resume_iter < MAX_ITER - 1

    result = run(train_net_cmd(out, RUN_OPTS, resume=True), log, timeout=600)
    assert result.returncode == 0, tail(log)
    text = open(log).read()
    assert f"Loading from {os.path.join(out, resume_name)}" in text
    assert f"Starting training from iteration {resume_iter + 1}" in text
    _assert_continues_reference(out, reference_run, resume_iter)


def test_kill_during_save_never_leaves_a_checkpoint_that_resume_picks(reference_run, tmp_path):
    out = str(tmp_path)
    log = os.path.join(out, "stdout.txt")
    driver = os.path.join(os.path.dirname(__file__), "crash_during_save.py")
    # Saves: 1 = first checkpoint, 2 = second (killed halfway); last_checkpoint is written by
    # the checkpointer with plain file writes, not torch.save, so it does not count.
    cmd = [sys.executable, driver, "2"] + train_net_cmd(out, RUN_OPTS)[2:]  # drop python, script
    crashed = run(cmd, log, timeout=600)
    assert crashed.returncode == -signal.SIGKILL, tail(log)

    first = f"model_{PERIOD - 1:07d}.pth"
    second = f"model_{2 * PERIOD - 1:07d}.pth"
    partial = glob.glob(os.path.join(out, f".{second}.*.tmp"))
    assert len(partial) == 1, os.listdir(out)  # the half-written data exists ...
    assert 0 < os.path.getsize(partial[0]) < os.path.getsize(os.path.join(out, first))
    assert not os.path.exists(os.path.join(out, second))  # ... but never under the real name
    assert last_checkpoint(out) == first

    result = run(train_net_cmd(out, RUN_OPTS, resume=True), log, timeout=600)
    assert result.returncode == 0, tail(log)
    text = open(log).read()
    assert f"Loading from {os.path.join(out, first)}" in text
    assert f"Removing {partial[0]}" in text and not os.path.exists(partial[0])
    _assert_continues_reference(out, reference_run, PERIOD - 1)


# The balance options: no state between steps, so a resumed run is exact (docs/design_decisions.md).
# The gate opens at START_ITER 2 and ramps, with alpha, over 3 iterations; the run resumes at
# iteration 3, inside both ramps, with the cap at work.
C = "MODEL.CONTEXTRAST."
BALANCE_OPTS = RUN_OPTS + [
    "SOLVER.MAX_ITER", "6",
    "SOLVER.CHECKPOINT_PERIOD", "3",
    C + "START_ITER", "2",
    C + "WARMUP_ITERS", "3",
    C + "GRAD_RATIO_CAP", "0.5",
]  # fmt: skip


def test_resume_is_exact_with_start_iter_and_grad_ratio_cap(tmp_path):
    straight, resumed = str(tmp_path / "straight"), str(tmp_path / "resumed")
    log = str(tmp_path / "stdout.txt")
    assert run(train_net_cmd(straight, BALANCE_OPTS), log, timeout=600).returncode == 0, tail(log)
    # Resume from the straight run's checkpoint after iteration 2, in a folder of its own.
    os.makedirs(resumed)
    shutil.copy(os.path.join(straight, "model_0000002.pth"), resumed)
    with open(os.path.join(resumed, "last_checkpoint"), "w") as f:
        f.write("model_0000002.pth")
    result = run(train_net_cmd(resumed, BALANCE_OPTS, resume=True), log, timeout=600)
    assert result.returncode == 0, tail(log)
    assert "Starting training from iteration 3" in tail(log, 200)
    ours, reference = read_metrics(resumed), read_metrics(straight)
    assert sorted(ours) == [3, 4, 5]
    cap = "contrast/grad_cap_scale_res5"  # logged at t: the scale of t - 1's backward pass
    for it in ours:
        for key in LOSS_KEYS + ((cap,) if it > 3 else ()):  # the resumed run's first has none
            assert ours[it][key] == reference[it][key], (it, key)
    assert cap not in reference[2]  # nothing to cap before START_ITER
    assert all(0 < reference[it][cap] < 1 for it in (3, 4, 5))  # the cap at work
    final, ref_final = (
        load_checkpoint(os.path.join(d, "model_final.pth")) for d in (resumed, straight)
    )
    assert_same_tensors(final["model"], ref_final["model"], "model")
    assert_same_tensors(final["trainer"], ref_final["trainer"], "trainer")
