"""Fixtures of the evaluation tests."""

import pytest


@pytest.fixture
def subset(fake_datasets):
    """Factory registering the first ``n`` records of a dataset under a new name (same metadata)."""
    return fake_datasets.subset
