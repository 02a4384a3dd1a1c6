"""Orderly end of a multi-process run: every process group and its gloo threads released in time.

detectron2's ``launch`` creates the default group plus a per-machine group
(``comm._LOCAL_PROCESS_GROUP``) and caches the group it gathers over
(``comm._get_global_gloo_group``), and never destroys them. ``dist.destroy_process_group()``
alone is not enough either: it removes the groups from torch's registry, but a group object that
Python still references keeps its gloo worker threads running. Whatever survives is torn down
during interpreter finalisation, where gloo's threads can abort a process that already finished
its work ("terminate called without an active exception", SIGABRT), failing a run whose results
were written. :func:`shutdown_distributed` destroys the groups and drops detectron2's references
while the interpreter is still fully alive.
"""

import gc
import logging

import torch.distributed as dist
from detectron2.utils import comm

logger = logging.getLogger(__name__)

# detectron2 module state that holds process groups. A detectron2 built from another revision
# may lack some of these; each is released when present.
_D2_CACHED_GROUP_FACTORIES = ("create_local_process_group", "_get_global_gloo_group")


def shutdown_distributed() -> None:
    """Destroy all process groups and release every reference detectron2 keeps to them.

    Safe in single-process runs and after a plain ``dist.destroy_process_group()``. Call it once
    per process after the last collective, e.g. in a ``finally`` around the function that
    ``launch`` runs.
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    if hasattr(comm, "_LOCAL_PROCESS_GROUP"):
        comm._LOCAL_PROCESS_GROUP = None
    for name in _D2_CACHED_GROUP_FACTORIES:
        cache_clear = getattr(getattr(comm, name, None), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()
    # Groups referenced only from reference cycles (a DDP wrapper inside a trainer) are freed,
    # and their threads joined, here rather than at interpreter exit.
    gc.collect()
    logger.debug("Process groups destroyed.")
