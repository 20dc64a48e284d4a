"""Rank synchronisation of the Stage 3 passes, with or without a process group.

Each pass ends when every rank's outputs exist. With a process group the ranks meet at
a barrier; ranks started with ``RANK``/``WORLD_SIZE`` but no process group (a pure-CPU
job) cannot, so every rank also waits for the files the other ranks write. Both are
done by :func:`sync_after`, which is all the passes call.
"""
import os.path as osp
import time
from typing import Callable, Optional, Sequence

from mars_mm.utils.offline import barrier


def wait_for_files(paths: Sequence[str], newer_than: float = 0.0,
                   timeout: float = 24 * 3600, poll: float = 2.0,
                   ready: Optional[Callable[[str], bool]] = None) -> None:
    """Block until every path exists (and is newer than ``newer_than``).

    Args:
        paths: files other ranks write.
        newer_than: a ``time.time()``: older files are a previous run's, not ours.
        timeout: seconds before giving up.
        poll: seconds between checks.
        ready: a stricter test than existence (e.g. made from the current
            inputs: a stale file of an earlier run exists but is not ready).

    Raises:
        TimeoutError: naming the first file still missing.
    """
    deadline = time.time() + timeout
    for path in paths:
        while not (osp.exists(path) and osp.getmtime(path) >= newer_than
                   and (ready is None or ready(path))):
            if time.time() > deadline:
                raise TimeoutError(f'waited {timeout:.0f} s for {path}')
            time.sleep(poll)


def sync_after(paths: Sequence[str], newer_than: float = 0.0,
               ready: Optional[Callable[[str], bool]] = None) -> None:
    """Barrier (if a process group exists), then wait for ``paths``."""
    barrier()
    wait_for_files(paths, newer_than, ready=ready)
