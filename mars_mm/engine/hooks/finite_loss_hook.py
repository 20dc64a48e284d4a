"""FiniteLossHook: stop training at the first non-finite loss; never checkpoint
non-finite weights.

A learning rate far too high (``optimizer.lr=1e6``), fp16 overflow or a bad label
makes the loss NaN or infinite. mmengine goes on: every later step turns more
weights into NaN, the checkpoint hook saves them, validation scores the broken
model (a NaN network predicts one class everywhere: a low but plausible mIoU)
and the run exits 0. This hook turns that into an error at the iteration where
it happens:

- ``after_train_iter``: the iteration's losses (``outputs`` of ``train_step``)
  must be finite on every rank (one flag is reduced across ranks, so all stop
  together); otherwise training stops with an error naming the iteration, the
  loss terms that are not finite and the last checkpoint saved. Its
  priority (``ABOVE_NORMAL``) puts it before the checkpoint hook (``VERY_LOW``)
  of the same iteration, so the weights the bad step produced are never saved.
- ``before_save_checkpoint``: the weights about to be saved (the model's
  ``state_dict`` and any weight dict a hook of higher priority added) must be
  finite. A step can make weights non-finite while its loss was still finite
  (an infinite gradient); the save is then refused, naming the iteration and
  the first non-finite weights. The EMA teacher (``EMATeacherHook``) averages
  the student, so its weights are finite while the student's are.

The hook is in ``configs/_base_/default_runtime.py``'s ``custom_hooks``, so every
mars_mm config has it, whichever train script runs it (``tools/train.py`` or
mmseg's own). A config that sets ``custom_hooks`` itself keeps it with
``custom_hooks = [dict(type=...), *_base_.custom_hooks]``.
"""
import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from mars_mm.registry import HOOKS

#: Checkpoint entries that are not weights (optimizer moments, logs, states).
NOT_WEIGHTS = ('meta', 'message_hub', 'optimizer', 'param_schedulers', 'rng_state')


def _tensors(value: Any, prefix: str = '') -> Iterator[Tuple[str, torch.Tensor]]:
    """``(name, tensor)`` of every floating-point tensor in nested dicts."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex():
            yield prefix, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f'{prefix}.{key}' if prefix else str(key))


def non_finite_weights(checkpoint: Dict[str, Any], limit: int = 3
                       ) -> Tuple[int, int, List[str]]:
    """Count the weight tensors of a checkpoint that hold NaN or inf.

    Returns:
        tuple: (tensors with a non-finite value, tensors checked, up to ``limit``
        of their names).
    """
    bad, total, names = 0, 0, []
    for key, value in checkpoint.items():
        if key in NOT_WEIGHTS:
            continue
        for name, tensor in _tensors(value, key):
            total += 1
            if not bool(torch.isfinite(tensor).all()):
                bad += 1
                if len(names) < limit:
                    names.append(name)
    return bad, total, names


def _loss_terms(outputs: Optional[dict]) -> Dict[str, float]:
    """The scalar loss terms of ``train_step``'s outputs, as floats."""
    terms = {}
    for key, value in (outputs or {}).items():
        if 'loss' not in key:
            continue
        if isinstance(value, torch.Tensor):
            if value.numel() != 1:
                continue
            value = value.detach().float().item()
        if isinstance(value, (int, float)):
            terms[key] = float(value)
    return terms


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop at the first non-finite loss; refuse to save non-finite weights.

    Args:
        check_weights: check the weights of every checkpoint before it is saved
            (one ``isfinite`` pass over the weights per save).
    """

    priority = 'ABOVE_NORMAL'

    def __init__(self, check_weights: bool = True) -> None:
        self.check_weights = check_weights

    @staticmethod
    def _where(runner) -> str:
        where = f'iteration {runner.iter + 1}'
        if isinstance(getattr(runner, '_train_loop', None), EpochBasedTrainLoop):
            where += f' (epoch {runner.epoch + 1})'
        return where

    @staticmethod
    def _last_checkpoint(runner) -> str:
        last = runner.message_hub.get_info('last_ckpt')
        return (f'the last checkpoint saved is {last}' if last else
                'no checkpoint was saved')

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Raise when a loss term of this iteration is NaN or infinite (on any
        rank: every rank stops at the same iteration, none waits in a collective
        for one that stopped)."""
        terms = _loss_terms(outputs)
        bad = {key: value for key, value in terms.items() if not math.isfinite(value)}
        if get_world_size() > 1:
            flag = torch.tensor([1.0 if bad else 0.0])
            all_reduce(flag, op='max')
            if flag.item() and not bad:
                bad = {'loss on another rank': float('nan')}
        if not bad:
            return
        shown = ', '.join(f'{key}={value}' for key, value in bad.items())
        raise FloatingPointError(
            f'non-finite loss at {self._where(runner)} of {runner.work_dir}: '
            f'{shown}; training stopped before the weights of this step were '
            f'saved ({self._last_checkpoint(runner)}). A learning rate far too '
            'high is the usual cause (optim_wrapper.optimizer.lr = '
            f'{_learning_rate(runner)}); lower it, or use gradient clipping '
            '(optim_wrapper.clip_grad)')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to save a checkpoint whose weights hold NaN or inf."""
        if not self.check_weights:
            return
        bad, total, names = non_finite_weights(checkpoint)
        if bad:
            raise FloatingPointError(
                f'non-finite weights after {self._where(runner)} of '
                f'{runner.work_dir}: {bad} of {total} weight tensors hold NaN or '
                f'inf (e.g. {", ".join(names)}); the checkpoint is not saved '
                f'({self._last_checkpoint(runner)}). The loss was still finite: a '
                'step with an infinite gradient; lower the learning rate '
                f'(optim_wrapper.optimizer.lr = {_learning_rate(runner)}) or clip '
                'gradients (optim_wrapper.clip_grad)')


def _learning_rate(runner) -> str:
    try:
        rates = runner.optim_wrapper.get_lr()
    except Exception:  # noqa: BLE001 - a message must not fail on a custom wrapper
        return 'unknown'
    values = sorted({rate for group in rates.values() for rate in group})
    return ', '.join(f'{value:g}' for value in values[:3]) or 'unknown'
