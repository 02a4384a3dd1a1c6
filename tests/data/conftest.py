"""Fixtures of the data tests: one fake datasets tree per module."""

from pathlib import Path

import pytest
from helpers.datasets import build_fake_root


@pytest.fixture(scope="module")
def fake_root(tmp_path_factory) -> Path:
    """Datasets root in every layout; PASCAL-Context, COCO-Stuff labels from prepare scripts."""
    return build_fake_root(tmp_path_factory.mktemp("datasets"))
