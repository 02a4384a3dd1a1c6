#!/usr/bin/env python
"""Install detectron2 into the running interpreter's environment, unless one is already there.

detectron2 is not published on PyPI by its authors. ``sal-detectron2`` packages upstream
detectron2 (main branch, 2024) as a cp310 wheel; its pure-Python part runs on newer Pythons and
semantic segmentation needs none of its compiled ops. A detectron2 that is already importable
(for example one built from source with CUDA ops) is left untouched.

The wheel also ships a top-level ``tools`` package (detectron2's own scripts) that would shadow
this repository's ``tools/`` directory; it is removed right after the install.
"""

import importlib.util
import logging
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

WHEEL = "sal-detectron2==0.7.2"
logger = logging.getLogger("install_detectron2")


def _has_deeplab() -> bool:
    return importlib.util.find_spec("detectron2") is not None and (
        importlib.util.find_spec("detectron2.projects.deeplab") is not None
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if _has_deeplab():
        spec = importlib.util.find_spec("detectron2")
        logger.info("detectron2 already installed at %s; leaving it alone", spec.origin)
        return 0
    site = Path(sysconfig.get_paths()["purelib"])
    cmd = [
        sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:",
        "--python-version", "3.10", "--target", str(site), WHEEL,
    ]  # fmt: skip
    logger.info("installing %s into %s", WHEEL, site)
    subprocess.check_call(cmd)
    stray_tools = site / "tools"
    if (stray_tools / "train_net.py").exists() and (
        stray_tools / "lazyconfig_train_net.py"
    ).exists():
        shutil.rmtree(stray_tools)
        logger.info("removed detectron2's top-level 'tools' package from %s", site)
    if not _has_deeplab():
        logger.error("detectron2 still not importable after installing %s", WHEEL)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
