"""Every YAML in configs/ merges with the project's config (yacs rejects unknown keys)."""

import glob
import os

import pytest
from helpers import CONFIGS_DIR, ROOT

from contextrast.config import get_contextrast_cfg

CONFIGS = sorted(glob.glob(os.path.join(CONFIGS_DIR, "**", "*.yaml"), recursive=True))


def test_configs_exist():
    assert any(p.endswith(os.path.join("demo", "contextrast.yaml")) for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_merges(path):
    cfg = get_contextrast_cfg()
    cfg.merge_from_file(path)
    if not os.path.basename(path).startswith("Base-"):
        assert cfg.MODEL.META_ARCHITECTURE == "ContextrastSegmentor"
    if os.path.basename(path).endswith("baseline.yaml"):
        assert not cfg.MODEL.CONTEXTRAST.ENABLED
    c = cfg.MODEL.CONTEXTRAST
    assert len(c.LAYER_WEIGHTS) == len(c.IN_FEATURES)
