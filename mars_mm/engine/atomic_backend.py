"""A local file backend for checkpoints: only complete files, deletions last.

mmengine's ``CheckpointHook`` reaches the disk through the file backend its
``backend_args`` select (``mmengine.fileio.get_file_backend``): the runner's
``save_checkpoint`` hands the checkpoint's bytes to ``put``, and the hook calls
``remove`` for a checkpoint beyond ``max_keep_ckpts`` or a previous ``best_*``
one, *before* it writes the new checkpoint. :class:`AtomicLocalBackend`,
registered under :data:`ATOMIC_BACKEND` with mmengine's public
``register_backend``, is mmengine's ``LocalBackend`` with two changes:

* ``put`` writes to a temporary file (``.tmp-*``) in the destination folder,
  flushes it to disk and renames it into place, so a file with a checkpoint's
  name is always complete. A write that fails (disk full, ``ulimit -f``) removes
  its temporary file and raises :class:`CheckpointWriteError` naming the file.
* ``remove`` and ``rmtree`` only queue the path; :meth:`commit_removals` deletes
  the queued paths. :class:`~mars_mm.engine.hooks.AtomicCheckpointHook` commits
  once mmengine's save has returned (new checkpoint and ``last_checkpoint``
  written), and drops the queue when the save failed.
"""
import os
import os.path as osp
from pathlib import Path
from typing import Iterable, List, Union

from mmengine.fileio import LocalBackend, register_backend

from mars_mm.utils.io import atomic_write

#: Name of :class:`AtomicLocalBackend` in ``backend_args=dict(backend=...)``.
ATOMIC_BACKEND = 'mars_atomic_local'


class CheckpointWriteError(OSError):
    """A checkpoint file could not be written; nothing was replaced or deleted.

    Attributes:
        path: the checkpoint that was being written.
        reason: the operating system's words (``File too large``).
    """

    def __init__(self, path: str, cause: OSError, previous: str = '') -> None:
        self.path = path
        self.reason = cause.strerror or str(cause)
        self.previous = previous
        message = (f'could not write the checkpoint {path} ({self.reason}: a full '
                   'disk or a file size limit such as `ulimit -f`?); nothing was '
                   'replaced or deleted')
        if previous:
            message += f': {previous}'
        super().__init__(cause.errno, message)

    def __str__(self) -> str:
        return self.strerror

    def __reduce__(self):  # picklable with its own arguments (multiprocessing)
        return (type(self), (self.path, OSError(self.errno, self.reason),
                             self.previous))


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose writes are atomic and whose deletions wait.

    Select it with ``backend_args=dict(backend='mars_atomic_local')``; mmengine
    builds one instance per ``get_file_backend`` call, so the queue of a
    hook's backend holds that hook's deletions only.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pending_removals: List[str] = []

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        """Write ``obj`` to ``filepath`` through a temporary file and a rename.

        Raises:
            CheckpointWriteError: the write failed; the temporary file is gone
                and ``filepath`` (if it existed) is untouched.
        """
        filepath = str(filepath)
        try:
            with atomic_write(filepath) as tmp:
                with open(tmp, 'wb') as handle:
                    handle.write(obj)
                    handle.flush()
                    os.fsync(handle.fileno())  # on disk before its name says so
        except OSError as err:
            raise CheckpointWriteError(filepath, err) from err

    def put_text(self, obj: str, filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        """Text variant of :meth:`put`."""
        self.put(obj.encode(encoding), filepath)

    def remove(self, filepath: Union[str, Path]) -> None:
        """Queue a file for :meth:`commit_removals`."""
        self.pending_removals.append(str(filepath))

    def rmtree(self, dir_path: Union[str, Path]) -> None:
        """Queue a folder (a DeepSpeed checkpoint) for :meth:`commit_removals`."""
        self.pending_removals.append(str(dir_path))

    def commit_removals(self, keep: Iterable[str] = ()) -> List[str]:
        """Delete the queued paths, except ``keep`` and those already gone.

        Returns:
            list: the paths deleted.
        """
        pending, self.pending_removals = self.pending_removals, []
        keep = {osp.abspath(path) for path in keep if path}
        removed = []
        for path in dict.fromkeys(pending):
            if osp.abspath(path) in keep:
                continue
            if osp.isfile(path):
                super().remove(path)
            elif osp.isdir(path):
                super().rmtree(path)
            else:
                continue
            removed.append(path)
        return removed

    def discard_removals(self) -> None:
        """Forget the queued deletions (the save they made room for failed)."""
        self.pending_removals = []


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
