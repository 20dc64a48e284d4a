"""FiniteLossHook: a NaN loss stops training; non-finite weights are never saved.

The end-to-end case (``tools/train.py`` at lr 1e6: NaN from iteration 3, the
checkpoint of iteration 2 kept and finite, nothing later written) is in the
bad-input catalogue (``tests/test_bad_inputs/test_train.py``, ``lr-1e6``).
"""
import math
from types import SimpleNamespace

import pytest
import torch
from mmengine.logging import MessageHub

from mars_mm.engine.hooks.finite_loss_hook import FiniteLossHook, non_finite_weights


class _Optim:
    def get_lr(self):
        return dict(lr=[1e6])


def _runner(iteration=2, last=None):
    hub = MessageHub.get_instance('finite_loss_test')
    hub.update_info('last_ckpt', last)
    return SimpleNamespace(iter=iteration, epoch=0, work_dir='work',
                           message_hub=hub, optim_wrapper=_Optim())


def test_finite_losses_pass():
    hook = FiniteLossHook()
    outputs = dict(loss=torch.tensor(2.5), acc_seg=torch.tensor(float('nan')),
                   **{'decode.loss_ce': torch.tensor(2.0)})
    hook.after_train_iter(_runner(), 0, outputs=outputs)  # acc is no loss


@pytest.mark.parametrize('bad', [float('nan'), float('inf'), -float('inf')])
def test_a_non_finite_loss_names_the_iteration_and_the_term(bad):
    outputs = {'loss': torch.tensor(bad), 'decode.loss_ce': torch.tensor(bad),
               'aux.loss_ce': torch.tensor(0.5)}
    with pytest.raises(FloatingPointError) as error:
        FiniteLossHook().after_train_iter(_runner(2, 'work/iter_2.pth'), 2,
                                          outputs=outputs)
    message = str(error.value)
    assert 'iteration 3 ' in message  # runner.iter counts from 0, the log from 1
    assert f'decode.loss_ce={bad}' in message and 'aux.loss_ce' not in message
    assert 'work/iter_2.pth' in message and 'lr = 1e+06' in message


def test_non_finite_weights_are_counted_outside_the_optimizer():
    checkpoint = dict(
        meta=dict(iter=2),
        state_dict={'a.weight': torch.ones(3),
                    'b.weight': torch.tensor([1.0, math.nan]),
                    'b.steps': torch.tensor([3])},  # integer buffers are skipped
        mars_teacher={'module.b.weight': torch.tensor([math.inf])},
        optimizer=dict(state={0: dict(momentum_buffer=torch.tensor([math.nan]))}))
    bad, total, names = non_finite_weights(checkpoint)
    assert (bad, total) == (2, 3)
    assert names == ['state_dict.b.weight', 'mars_teacher.module.b.weight']


def test_a_checkpoint_with_non_finite_weights_is_refused():
    hook = FiniteLossHook()
    good = dict(state_dict={'w': torch.ones(2)},
                optimizer=dict(state={0: dict(buf=torch.tensor([math.nan]))}))
    hook.before_save_checkpoint(_runner(), good)  # optimizer moments are no weights
    bad = dict(state_dict={'w': torch.tensor([1.0, math.inf])})
    with pytest.raises(FloatingPointError, match=r'iteration 3 .*1 of 1 weight '
                       r'tensors.*state_dict\.w.*not saved'):
        hook.before_save_checkpoint(_runner(), bad)
    FiniteLossHook(check_weights=False).before_save_checkpoint(_runner(), bad)


def test_it_runs_before_the_checkpoint_hook():
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import get_priority
    assert get_priority(FiniteLossHook.priority) < get_priority(CheckpointHook.priority)


def test_every_rank_stops_when_one_sees_a_non_finite_loss(monkeypatch):
    """Rank 1 alone has NaN: rank 0 must stop too (it would wait forever in the
    next gradient all-reduce for a rank that has exited)."""
    from mars_mm.engine.hooks import finite_loss_hook

    def reduce_max(tensor, op):  # what all_reduce(max) gives with a NaN on rank 1
        assert op == 'max'
        tensor.fill_(1.0)
    monkeypatch.setattr(finite_loss_hook, 'get_world_size', lambda: 2)
    monkeypatch.setattr(finite_loss_hook, 'all_reduce', reduce_max)
    with pytest.raises(FloatingPointError, match=r'iteration 3 .*loss on another '
                       r'rank=nan'):
        FiniteLossHook().after_train_iter(_runner(), 2,
                                          outputs=dict(loss=torch.tensor(1.0)))
