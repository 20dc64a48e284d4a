"""A test-only hook: which images each rank validated or tested, written to files.

Distributed tests check the outcome of a run through files instead of its log:
``<work_dir>/<mode>_samples_rank<r>.json`` lists the ``img_path`` of every sample
rank ``r`` predicted in the last ``val``/``test`` epoch. Configs load it with
``custom_imports=dict(imports=['mars_mm', 'tests.sample_record_hook'])`` and
``custom_hooks=[dict(type='SampleRecordHook')]``.
"""
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook

from mars_mm.registry import HOOKS


@HOOKS.register_module()
class SampleRecordHook(Hook):
    """Record the image paths this rank predicted, per val/test epoch."""

    def __init__(self) -> None:
        self._paths = []

    def _reset(self, runner) -> None:
        self._paths = []

    def _add(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._paths += [sample.img_path for sample in outputs]

    def _write(self, runner, mode: str) -> None:
        path = osp.join(runner.work_dir, f'{mode}_samples_rank{get_rank()}.json')
        with open(path, 'w') as handle:
            json.dump(sorted(self._paths), handle)

    before_val_epoch = before_test_epoch = _reset
    after_val_iter = after_test_iter = _add

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'val')

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._write(runner, 'test')
