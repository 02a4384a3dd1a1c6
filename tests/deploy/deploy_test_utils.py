"""Constants shared by the deploy tests (a module name of its own: several conftest.py exist)."""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:  # the `deploy` package lives at the repository root
    sys.path.insert(0, ROOT)

DEMO = os.path.join(ROOT, "configs", "demo", "contextrast.yaml")
BASELINE = os.path.join(ROOT, "configs", "demo", "baseline.yaml")
# Three iterations without warm-up move the weights away from their initialisation (logits of
# order 1 instead of 1e-3), so that parity tolerances are meaningful; small crops keep it fast.
TRAIN_OPTS = [
    "SOLVER.MAX_ITER", "3",
    "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.CHECKPOINT_PERIOD", "1000",
    "INPUT.CROP.SIZE", "(64, 64)",
    "DATALOADER.NUM_WORKERS", "0",
    "DATASETS.TEST", "()",
]  # fmt: skip
