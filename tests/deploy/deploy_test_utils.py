"""Constants shared by the deploy tests (a module name of its own: several conftest.py exist)."""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if ROOT not in sys.path:  # the `deploy` package lives at the repository root
    sys.path.insert(0, ROOT)

DEMO = os.path.join(ROOT, "configs", "demo", "contextrast.yaml")
BASELINE = os.path.join(ROOT, "configs", "demo", "baseline.yaml")
# A demo model trained three iterations (small crops keep it fast), without warm-up so that the
# weights move away from their initialisation (a fresh network's logits are ~1e-2, too flat for
# a meaningful parity check). Its eval-mode logits are large (max |logit| 76-78 at the parity
# test's inputs here, ~175 in issue 10) and that is expected, not divergence: the training loss
# goes down (2.40, 2.47, 2.19) and training-mode outputs stay below 1, but after three steps at
# the demo's LR 0.05 the BatchNorm running statistics are still 73% their initial values
# (momentum 0.1) and no longer fit the updated weights; in eval mode the mismatch compounds over
# the ~50 BN layers. With the LR at 0 the same three iterations give eval logits below 0.01. For
# parity this checkpoint is representative: ONNX Runtime differs from PyTorch by 5-7e-7 of its
# largest logit, as for the fully trained 300-iteration demo checkpoint (6-7e-7 at max |logit| 6),
# so the parity tests compare relative to the largest logit (tests/helpers/numeric.py). (PreciseBN
# at the end would shrink the logits to 2-4 but keep the rounding of the large intermediate
# activations: 2e-5 relative, worse conditioned than a trained network.)
TRAIN_OPTS = [
    "SOLVER.MAX_ITER", "3",
    "SOLVER.WARMUP_ITERS", "0",
    "SOLVER.IMS_PER_BATCH", "2",
    "SOLVER.CHECKPOINT_PERIOD", "1000",
    "INPUT.CROP.SIZE", "(64, 64)",
    "DATALOADER.NUM_WORKERS", "0",
    "DATASETS.TEST", "()",
]  # fmt: skip
