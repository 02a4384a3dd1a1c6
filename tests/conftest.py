"""Shared pytest configuration: the ``slow`` marker and common fixtures."""

import os

import pytest

# Datasets are registered from $DETECTRON2_DATASETS when contextrast is first imported. Without
# it, point at the shared data beside the checkout (real CamVid) when it exists; tests that need
# real data skip cleanly otherwise.
_SHARED_DATA = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")
)
if "DETECTRON2_DATASETS" not in os.environ and os.path.isdir(_SHARED_DATA):
    os.environ["DETECTRON2_DATASETS"] = _SHARED_DATA


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end or multi-process test (--runslow)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (make test-all)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def camvid_root():
    """Root of the real CamVid files, or skip when they are absent."""
    root = os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "camvid")
    if os.path.isdir(os.path.join(root, "train")):
        return os.path.abspath(root)
    pytest.skip(f"CamVid not found under $DETECTRON2_DATASETS/camvid ({root})")


@pytest.fixture
def fake_datasets(tmp_path):
    """:class:`helpers.datasets.TemporaryDatasets` of this test, removed from the catalogs after."""
    # Imported here: importing contextrast registers the datasets, after the set-up above.
    from helpers.datasets import TemporaryDatasets

    datasets = TemporaryDatasets(tmp_path)
    yield datasets
    datasets.remove_all()
