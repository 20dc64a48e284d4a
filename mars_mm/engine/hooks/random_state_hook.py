"""RandomStateHook: a resumed run draws the random numbers of one never stopped.

mmengine's checkpoints hold the weights, the optimizer, the schedulers and the
seed, but not where the random streams were: a resumed run augments and drops
out differently from the run it continues. This hook

* stores the main process's random states (Python, NumPy, torch CPU and CUDA)
  in every checkpoint as ``rng_state`` (``before_save_checkpoint``);
* on a resume, restores them right before the first batch is drawn: after the
  replay of the batches an iteration-based loop has already seen (mmengine
  advances its dataloader ``runner.iter`` times first), at the start of the
  epoch for an epoch-based loop;
* makes validation neutral for the training stream (``before_val`` /
  ``after_val`` undo its draws), so a checkpoint saved before or after a
  validation continues the same way;
* for an epoch-based loop whose dataloader keeps persistent worker processes
  (``persistent_workers=True``, ``num_workers > 0``), whose random streams no
  checkpoint can hold, loads the data of the finished epochs again (no forward
  pass) before the first resumed one, so the workers continue where the
  interrupted run's were (``replay_persistent_workers=False`` skips it, at the
  price of other augmentations after a resume).

It works beside any checkpoint hook (mmengine's ``CheckpointHook`` or
:class:`~mars_mm.engine.hooks.AtomicCheckpointHook`); mars_mm's configs name it
in ``default_hooks.random_state``. See ``docs/en/reliability.md``, "Checkpoints
and resuming".
"""
import random
import time
from functools import partial
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop

from mars_mm.registry import HOOKS


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
    """A loop's data iterator that calls ``action`` after its ``count``-th batch.

    mmengine 0.10's ``IterBasedTrainLoop.run`` advances ``dataloader_iterator``
    ``runner.iter`` times after ``before_train_epoch`` and draws the first new
    batch before any other hook runs: the random states must be restored in
    between, and no hook is called there. Pinned by the bit-identity tests of
    ``tests/test_engine/test_random_state_hook.py``.
    """

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


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Random states in checkpoints, restored on a resume (see the module doc).

    Args:
        replay_persistent_workers: on resuming an epoch-based loop whose train
            dataloader keeps persistent workers, load the data of the finished
            epochs again (without training on it) so that the workers' random
            streams continue as if never interrupted. It costs the data loading
            of those epochs; False resumes at once, with other augmentations.
    """

    priority = 'VERY_LOW'

    def __init__(self, replay_persistent_workers: bool = True) -> None:
        self.replay_persistent_workers = replay_persistent_workers
        self._loaded: Optional[Dict[str, Any]] = None
        self._loaded_iter = -1
        self._val_rng: Optional[Dict[str, Any]] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        # during validation (save_best re-saves the last checkpoint) the state
        # the training stream continues from is the one before validation
        checkpoint['rng_state'] = self._val_rng if self._val_rng is not None \
            else capture_rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # called for load_from and resume alike: before_train_epoch tells them
        # apart (a resumed loop starts at the checkpoint's iteration)
        self._loaded = checkpoint.get('rng_state')
        self._loaded_iter = int((checkpoint.get('meta') or {}).get('iter', -1))

    def before_train_epoch(self, runner) -> None:
        state, self._loaded = self._loaded, None
        if state is None or runner.iter <= 0 or runner.iter != self._loaded_iter:
            return  # not a resume (weights loaded with load_from, or none)
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
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
        self._val_rng = capture_rng_state()

    def after_val(self, runner) -> None:
        if self._val_rng is not None:
            restore_rng_state(self._val_rng)
            self._val_rng = None
