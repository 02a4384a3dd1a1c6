"""Helpers shared by the test files (the role ``detectron2/utils/testing.py`` plays for
detectron2's tests): repository paths, the demo configs and tiny models, real training
processes, and scale-aware numeric comparisons. Import them from the package:
``from helpers import demo_cfg, assert_close_to_reference``.

``helpers`` is importable because ``pytest.ini`` puts ``tests/`` (and the repository root, for
the ``deploy`` scripts) on the import path.
"""

from .configs import SMALL_HEADS_OPTS, TINY_OPTS, demo_cfg, tiny_model, training_batch
from .numeric import (
    FP32_ATOL,
    FP32_RTOL,
    TF32_RTOL,
    UPDATE_RTOL,
    assert_close_to_reference,
    assert_updates_close,
)
from .paths import (
    BASELINE_CONFIG,
    CONFIGS_DIR,
    DEMO_CONFIG,
    EXPORT_INSTANT_TEST_CONFIG,
    INSTANT_TEST_CONFIG,
    ROOT,
    TRAIN_NET,
    tool,
)
from .processes import (
    EVAL_OPTS,
    LOSS_KEYS,
    RUN_OPTS,
    assert_same_run,
    assert_same_tensors,
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

__all__ = [
    "BASELINE_CONFIG",
    "CONFIGS_DIR",
    "DEMO_CONFIG",
    "EVAL_OPTS",
    "EXPORT_INSTANT_TEST_CONFIG",
    "FP32_ATOL",
    "FP32_RTOL",
    "INSTANT_TEST_CONFIG",
    "LOSS_KEYS",
    "ROOT",
    "RUN_OPTS",
    "SMALL_HEADS_OPTS",
    "TF32_RTOL",
    "TINY_OPTS",
    "TRAIN_NET",
    "UPDATE_RTOL",
    "assert_close_to_reference",
    "assert_same_run",
    "assert_same_tensors",
    "assert_updates_close",
    "demo_cfg",
    "free_port",
    "last_checkpoint",
    "load_checkpoint",
    "read_metrics",
    "run",
    "subprocess_env",
    "tail",
    "tiny_model",
    "tool",
    "train_net_cmd",
    "training_batch",
    "wait_for",
]
