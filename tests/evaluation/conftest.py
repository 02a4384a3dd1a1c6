"""Fixtures of the evaluation tests."""

import uuid

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog


@pytest.fixture
def subset():
    """Factory registering the first ``n`` records of a dataset under a new name (same metadata)."""
    names = []

    def make(source, n):
        name = f"{source}_first{n}_{uuid.uuid4().hex[:6]}"
        records = DatasetCatalog.get(source)[:n]
        DatasetCatalog.register(name, lambda: records)
        meta = {k: v for k, v in MetadataCatalog.get(source).as_dict().items() if k != "name"}
        MetadataCatalog.get(name).set(**meta)
        names.append(name)
        return name

    yield make
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
