"""Registration of the real datasets (import side effect).

Registers CamVid, PASCAL-Context-59 and COCO-Stuff-10k under ``$DETECTRON2_DATASETS`` (read now,
as detectron2's ``builtin.py`` does). Cityscapes (``cityscapes_fine_sem_seg_{train,val}``) and
ADE20K (``ade20k_sem_seg_{train,val}``) are detectron2's own registrations and are reused as they
are. Registration only records paths: a missing tree fails when the dataset is loaded.
"""

from .camvid import register_all_camvid
from .coco_stuff import register_all_coco_stuff_10k
from .common import datasets_root
from .pascal_context import register_all_pascal_context_59


def register_all(root: str) -> None:
    """Register every project dataset under ``root``, a datasets root like the default one."""
    register_all_camvid(root)
    register_all_pascal_context_59(root)
    register_all_coco_stuff_10k(root)


register_all(datasets_root())
