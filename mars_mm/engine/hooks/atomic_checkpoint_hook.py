"""AtomicCheckpointHook: checkpoints that survive a kill at any moment, and resume
bit-identically.

mmengine's ``CheckpointHook`` (0.10) saves in this order: delete the oldest kept
checkpoint (``max_keep_ckpts``), write the new one in place, then rewrite
``last_checkpoint``. A job killed while writing leaves a truncated new file, the
previous checkpoint already deleted and ``last_checkpoint`` naming the deleted
one: every checkpoint of the run is lost. This hook keeps mmengine's options and
file names and changes the order:

1. the new checkpoint is written to ``.tmp-<name>`` in the same folder, flushed to
   disk and renamed into place (a file with a checkpoint's name is complete);
2. ``last_checkpoint`` is replaced atomically;
3. only then are the checkpoints beyond ``max_keep_ckpts`` (and a previous
   ``best_*`` checkpoint) deleted.

A kill at any moment leaves the newest complete checkpoint reachable
(``tools/train.py --resume`` also falls back to it if ``last_checkpoint`` names a
file that is missing or incomplete: :mod:`mars_mm.utils.checkpoint`). Leftover
temporaries, and checkpoints a kill kept from being deleted, are removed when
training starts again.

Bit-identical resume: the checkpoint also holds the random states of the main
process (``rng_state``: Python, NumPy, torch CPU and CUDA). On ``--resume`` they
are restored right before the first batch is drawn (after mmengine's replay of
the batches an iteration-based loop has already seen), and validation is made
neutral for the training stream (its random draws are undone), so a resumed run
draws the same random numbers as one that never stopped. Dataloader worker
processes that persist across epochs (``persistent_workers=True`` with
``num_workers > 0``) hold random streams of their own that no checkpoint can
capture: an iteration-based loop replays its batches anyway (mmengine), and for
an epoch-based loop this hook replays the data loading of the finished epochs
(no forward pass) before the first resumed one, so the workers continue where
the interrupted run's workers were (``replay_persistent_workers=False`` skips
that, at the price of other augmentations after a resume). See
``docs/en/reliability.md``, "Checkpoints and resuming".
"""
import glob
import os
import os.path as osp
import random
import re
import time
from functools import partial
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.runner import IterBasedTrainLoop

from mars_mm.registry import HOOKS
from mars_mm.utils.io import save_text

#: Prefix of the temporary file a checkpoint is written to before its rename.
TMP_PREFIX = '.tmp-'


# ------------------------------------------------------------------ random states
def capture_rng_state() -> Dict[str, Any]:
    """The main process's random states, as tensors and plain Python values only
    (``weights_only`` loading accepts them)."""
    version, state, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    captured = dict(
        python=dict(version=version, state=list(state), gauss=gauss),
        numpy=dict(kind=kind, keys=torch.from_numpy(keys.astype(np.int64)),
                   pos=int(pos), has_gauss=int(has_gauss), cached=float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        captured['cuda'] = torch.cuda.get_rng_state_all()
    return captured


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    python = state['python']
    random.setstate((python['version'], tuple(python['state']), python['gauss']))
    numpy = state['numpy']
    np.random.set_state((numpy['kind'], numpy['keys'].numpy().astype(np.uint32),
                         numpy['pos'], numpy['has_gauss'], numpy['cached']))
    torch.set_rng_state(state['torch'])
    cuda = state.get('cuda')
    if cuda is not None and torch.cuda.is_available() \
            and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class _AfterReplay:
    """A loop's data iterator that calls ``action`` after its ``count``-th batch:
    mmengine's iteration loop replays the batches a resumed run has already seen,
    and the random states must be restored after that replay."""

    def __init__(self, iterator: Any, count: int, action: Callable[[], None]):
        self._iterator, self._count, self._action = iterator, count, action

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._iterator)
        if self._count > 0:
            self._count -= 1
            if self._count == 0:
                self._action()
        return batch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iterator, name)


class _DeferredRemoval:
    """A file backend whose deletions wait until the new checkpoint is in place."""

    def __init__(self, backend: Any, pending: List[str]) -> None:
        self._backend, self._pending = backend, pending

    def remove(self, path: str) -> None:
        self._pending.append(path)

    def rmtree(self, path: str) -> None:
        self._pending.append(path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` with kill-safe saving and full random state.

    Same arguments and files as ``CheckpointHook``; see the module docstring for
    the order of the writes. mars_mm's configs use it as
    ``default_hooks.checkpoint``, and ``tools/train.py`` puts it in place of a
    plain ``CheckpointHook`` in any config. Checkpoints outside the local file
    system (``backend_args`` of a remote backend) are saved as mmengine saves them.

    Args:
        replay_persistent_workers: on resuming an epoch-based loop whose train
            dataloader keeps persistent workers, load the data of the finished
            epochs again (without training on it) so that the workers' random
            streams continue as if never interrupted. It costs the data loading
            of those epochs; False resumes at once, with other augmentations.
    """

    def __init__(self, *args, replay_persistent_workers: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.replay_persistent_workers = replay_persistent_workers
        self._pending: List[str] = []
        self._resumed_rng: Optional[Dict[str, Any]] = None
        self._val_rng: Optional[Dict[str, Any]] = None

    # ------------------------------------------------------------------ saving
    def _is_local(self) -> bool:
        return isinstance(getattr(self, 'file_backend', None), LocalBackend)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if self._is_local() and is_main_process():
            self._remove_leftovers(runner)

    def _remove_leftovers(self, runner) -> None:
        """Temporaries of a killed save, and checkpoints a kill left undeleted."""
        for path in glob.glob(osp.join(self.out_dir, TMP_PREFIX + '*')):
            os.remove(path)
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

    def _atomic_save(self, save: Callable, out_dir: str, filename: str, *args,
                     **kwargs) -> None:
        """``runner.save_checkpoint`` into a temporary file, then a rename."""
        save(out_dir, TMP_PREFIX + filename, *args, **kwargs)
        if not is_main_process():
            return
        tmp = osp.join(out_dir, TMP_PREFIX + filename)
        descriptor = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(tmp, osp.join(out_dir, filename))

    @staticmethod
    def _runner_save(runner) -> Callable:
        """The runner's own ``save_checkpoint`` (not the wrapper set while a best
        checkpoint is saved)."""
        return type(runner).save_checkpoint.__get__(runner)

    def _flush_removals(self, keep: Optional[str] = None) -> None:
        pending, self._pending = self._pending, []
        if not is_main_process():
            return
        for path in pending:
            if path == keep:
                continue
            if osp.isfile(path):
                os.remove(path)
            elif osp.isdir(path):
                import shutil
                shutil.rmtree(path)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not self._is_local():
            return super()._save_checkpoint_with_step(runner, step, meta)
        if self.max_keep_ckpts > 0 and not (
                self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                oldest = self.keep_ckpt_ids.popleft()
                self._pending.append(self.file_backend.join_path(
                    self.out_dir, self.filename_tmpl.format(oldest)))
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        self._atomic_save(
            self._runner_save(runner), self.out_dir, filename, self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler, meta=meta,
            by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
        if is_main_process():
            save_text(osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        self._flush_removals(keep=self.last_ckpt)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self.save_best or not self._is_local():
            return super()._save_best_checkpoint(runner, metrics)
        backend = self.file_backend
        self.file_backend = _DeferredRemoval(backend, self._pending)
        runner.save_checkpoint = partial(self._atomic_save, self._runner_save(runner))
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            self.file_backend = backend
            runner.__dict__.pop('save_checkpoint', None)
        self._flush_removals(keep=self.last_ckpt)

    # ------------------------------------------------------------ random states
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # during validation (save_best re-saves the last checkpoint) the state
        # the training stream continues from is the one before validation
        checkpoint['rng_state'] = self._val_rng if self._val_rng is not None \
            else capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if getattr(runner, '_resume', False) and 'rng_state' in checkpoint:
            self._resumed_rng = checkpoint['rng_state']

    def before_train_epoch(self, runner) -> None:
        if self._resumed_rng is None:
            return
        state, self._resumed_rng = self._resumed_rng, None
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop) and runner.iter > 0:
            # the loop replays runner.iter batches next; restore after them
            loop.dataloader_iterator = _AfterReplay(
                loop.dataloader_iterator, runner.iter,
                partial(restore_rng_state, state))
        else:
            # the replay creates the loader's iterator, which draws a seed from
            # the main process's generator: restore after it, as the
            # uninterrupted run drew that seed before the saved state
            self._replay_worker_epochs(runner)
            restore_rng_state(state)

    def _replay_worker_epochs(self, runner) -> None:
        """Load (and discard) the data of the finished epochs through persistent
        workers, each epoch with its sampler order, so that their random
        streams are where the uninterrupted run's were."""
        loader = runner.train_loop.dataloader
        if not (self.replay_persistent_workers and runner.epoch > 0
                and getattr(loader, 'persistent_workers', False)
                and getattr(loader, 'num_workers', 0) > 0):
            return
        sampler = getattr(loader, 'sampler', None)
        if not hasattr(sampler, 'set_epoch'):
            sampler = getattr(getattr(loader, 'batch_sampler', None), 'sampler',
                              None)
        start = time.perf_counter()
        for epoch in range(runner.epoch):
            if hasattr(sampler, 'set_epoch'):
                sampler.set_epoch(epoch)  # as DistSamplerSeedHook did then
            for _ in loader:
                pass
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(runner.epoch)
        runner.logger.info(
            f'Replayed the data loading of {runner.epoch} epochs in '
            f'{time.perf_counter() - start:.1f} s so that the persistent dataloader '
            'workers continue their random streams (replay_persistent_workers)')

    def before_val(self, runner) -> None:
        self._val_rng = capture_rng_state() if self._training(runner) else None

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            restore_rng_state(self._val_rng)
            self._val_rng = None

    @staticmethod
    def _training(runner) -> bool:
        return getattr(runner, '_train_loop', None) is not None and not isinstance(
            runner._train_loop, dict)
