"""Reading back a run's ``metrics.json`` (detectron2's ``JSONWriter``: one JSON record per line),
for the scripts that summarise finished runs (``tools/demo.py``, ``bench/camvid_study.py``)."""

import json
from typing import Dict, List

__all__ = ["last_eval_record", "read_records"]


def read_records(path: str) -> List[Dict]:
    """Every record of a ``metrics.json``, in file order (a resumed run repeats iterations)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def last_eval_record(path: str, key: str = "sem_seg/mIoU") -> Dict:
    """The last record of ``path`` that holds ``key``: the final evaluation of a run.

    Raises:
        RuntimeError: naming the file, when no record holds ``key`` (the evaluation did not run).
    """
    evals = [r for r in read_records(path) if key in r]
    if not evals:
        raise RuntimeError(f"{path} holds no {key!r} record: did the evaluation run?")
    return evals[-1]
