"""Fixtures of the engine tests: one uninterrupted reference training run, shared."""

import os

import pytest
from helpers import EVAL_OPTS, RUN_OPTS, run, tail, train_net_cmd


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """Output folder of an uninterrupted ``tools/train_net.py`` run with ``RUN_OPTS`` that also
    evaluates (``EVAL_OPTS``)."""
    out = str(tmp_path_factory.mktemp("reference_run"))
    log = os.path.join(out, "stdout.txt")
    result = run(train_net_cmd(out, RUN_OPTS + EVAL_OPTS), log, timeout=600)
    assert result.returncode == 0, tail(log)
    return out
