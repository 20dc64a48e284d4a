"""AtomicCheckpointHook: mmengine's checkpoints, safe against a kill at any moment.

mmengine's ``CheckpointHook`` (0.10) saves in this order: delete the oldest kept
checkpoint (``max_keep_ckpts``), write the new one in place, then rewrite
``last_checkpoint``. A job killed while writing leaves a truncated new file, the
previous checkpoint already deleted and ``last_checkpoint`` naming the deleted
one: every checkpoint of the run is lost.

This hook keeps mmengine's saving code, options and file names, and routes the
files through :class:`~mars_mm.engine.atomic_backend.AtomicLocalBackend`
(mmengine's public ``backend_args``): the checkpoint is written to a temporary
file and renamed into place, and the deletions mmengine asks for wait until the
save has returned. The order on disk becomes

1. the new checkpoint, complete under its name (``.tmp-*`` until then);
2. ``last_checkpoint`` (rewritten by mmengine);
3. the checkpoints beyond ``max_keep_ckpts`` and a previous ``best_*`` deleted.

Only public methods of ``CheckpointHook`` are overridden: each calls mmengine's
and then commits the queued deletions. A save that fails (a full disk) raises an
error naming the file and the previous checkpoint, which is intact. When training
starts again, leftover temporaries and the checkpoints a kill kept from being
deleted are removed, and after a resume ``last_checkpoint`` names the checkpoint
the run continues from. The random states that make a resumed run bit-identical
are :class:`~mars_mm.engine.hooks.RandomStateHook`'s, a hook of its own.
"""
import glob
import os
import os.path as osp
import re
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook

from mars_mm.engine.atomic_backend import (
    ATOMIC_BACKEND,
    AtomicLocalBackend,
    CheckpointWriteError,
)
from mars_mm.registry import HOOKS
from mars_mm.utils.checkpoint import newest_complete_checkpoint
from mars_mm.utils.io import is_temporary, save_text


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with kill-safe writes and deletions last.

    Same arguments and files as ``CheckpointHook``. mars_mm's configs name it in
    ``default_hooks.checkpoint``. A checkpoint folder outside the local file
    system (``out_dir`` with a ``scheme://``), or one with its own
    ``backend_args`` / ``file_client_args``, is saved as mmengine saves it.
    """

    def __init__(self, *args, out_dir: Optional[str] = None,
                 backend_args: Optional[dict] = None,
                 file_client_args: Optional[dict] = None, **kwargs) -> None:
        if backend_args is None and file_client_args is None \
                and '://' not in str(out_dir or ''):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, backend_args=backend_args,
                         file_client_args=file_client_args, **kwargs)

    @property
    def atomic(self) -> bool:
        """Whether this hook's files go through :class:`AtomicLocalBackend`."""
        return isinstance(getattr(self, 'file_backend', None), AtomicLocalBackend)

    # ------------------------------------------------- mmengine's public methods
    def before_train(self, runner) -> None:
        super().before_train(runner)  # may queue checkpoints beyond max_keep_ckpts
        if self.atomic:
            self._commit(runner)
            if is_main_process():
                self._record_resumed(runner)  # before anything is deleted
                self._remove_leftovers(runner)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        self._save(runner, super().after_train_iter, batch_idx,
                   data_batch=data_batch, outputs=outputs)

    def after_train_epoch(self, runner) -> None:
        self._save(runner, super().after_train_epoch)

    def after_val_epoch(self, runner, metrics) -> None:
        self._save(runner, super().after_val_epoch, metrics)

    # ------------------------------------------------------------------ helpers
    def _save(self, runner, save, *args, **kwargs) -> None:
        """Run one of mmengine's saving methods, then delete what it queued."""
        try:
            save(runner, *args, **kwargs)
        except CheckpointWriteError as err:
            if self.atomic:
                self.file_backend.discard_removals()
            previous, _ = newest_complete_checkpoint(self.out_dir)
            kept = (f'the previous checkpoint {previous} is intact (resume from it '
                    'with tools/train.py --resume)') if previous else \
                f'{self.out_dir} holds no earlier complete checkpoint'
            raise CheckpointWriteError(err.path, OSError(err.errno, err.reason),
                                       kept) from err
        if self.atomic:
            self._commit(runner)

    def _commit(self, runner) -> None:
        if not is_main_process():  # mmengine deletes on the main process only
            self.file_backend.discard_removals()
            return
        # the best checkpoint and the newest one are never deleted, whatever
        # mmengine queued on the way (it re-saves the newest after a new best)
        keep = [self.last_ckpt, getattr(self, 'best_ckpt_path', None),
                *(getattr(self, 'best_ckpt_path_dict', None) or {}).values()]
        for path in self.file_backend.commit_removals(keep=keep):
            runner.logger.info(f'Removed {path}')

    def _record_resumed(self, runner) -> None:
        """After a resume, ``last_checkpoint`` names the checkpoint the run
        continues from (a kill between a save and its record, or while mmengine
        rewrote the record, left it naming an older or no file), so that a later
        ``--resume`` of any train script finds it."""
        resumed = runner.message_hub.get_info('last_ckpt')
        if not resumed or not osp.isfile(resumed) or \
                osp.abspath(osp.dirname(resumed)) != osp.abspath(self.out_dir):
            return
        record = osp.join(runner.work_dir, 'last_checkpoint')
        if osp.isfile(record):
            with open(record) as handle:
                if handle.read() == resumed:
                    return
        save_text(record, resumed)

    def _remove_leftovers(self, runner) -> None:
        """Temporaries of a killed save, and checkpoints a kill left undeleted."""
        for path in glob.glob(osp.join(self.out_dir, '.tmp-*')):
            if is_temporary(path) and osp.isfile(path):
                os.remove(path)
                runner.logger.info(f'Removed {path}, left by an interrupted save')
        keep = list(getattr(self, 'keep_ckpt_ids', []) or [])
        if self.max_keep_ckpts <= 0 or not keep:
            return
        pattern = re.compile('^' + re.escape(self.filename_tmpl).replace(
            re.escape('{}'), r'(\d+)') + '$')
        for name in os.listdir(self.out_dir):
            match = pattern.match(name)
            if match and int(match.group(1)) < max(keep) \
                    and int(match.group(1)) not in keep:
                os.remove(osp.join(self.out_dir, name))
                runner.logger.info(f'Removed {name}, a checkpoint beyond '
                                   f'max_keep_ckpts={self.max_keep_ckpts} left by '
                                   'an interrupted run')
