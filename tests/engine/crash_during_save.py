"""Run tools/train_net.py, but SIGKILL the process halfway through writing its N-th checkpoint.

Usage: python crash_during_save.py N <train_net.py arguments...>

Fault injection for tests: ``torch.save`` writes the first half of the serialized checkpoint
into the file it was given, flushes it to disk and then the process kills itself, as a job killed
by the scheduler (or a node failure) in the middle of a save would leave it.
"""

import io
import os
import runpy
import signal
import sys

import torch

TRAIN_NET = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "train_net.py")


def main() -> None:
    crash_at = int(sys.argv[1])
    real_save = torch.save
    calls = []

    def dying_save(obj, f, *args, **kwargs):
        calls.append(getattr(f, "name", f))
        if len(calls) < crash_at:
            return real_save(obj, f, *args, **kwargs)
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    torch.save = dying_save
    sys.argv = [TRAIN_NET] + sys.argv[2:]
    runpy.run_path(TRAIN_NET, run_name="__main__")


if __name__ == "__main__":
    main()
