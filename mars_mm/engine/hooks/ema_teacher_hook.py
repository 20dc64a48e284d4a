"""MARS Stage 4's EMA teacher, owned by a hook (as mmengine's EMAHook owns its EMA)."""
import logging
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner.checkpoint import weights_to_cpu

from mars_mm.registry import HOOKS, MODELS


@HOOKS.register_module()
class EMATeacherHook(Hook):
    """Build, update and checkpoint the EMA teacher of ``MARSEncoderDecoder``.

    Modelled on mmengine's ``EMAHook`` (the averaged model lives in the hook and is
    saved under its own checkpoint key) and mmdet's ``MeanTeacherHook`` (the
    teacher follows the student in ``after_train_iter``, i.e. after the optimizer
    step):

    - ``before_train``: the teacher is an :class:`~mmengine.model.
      ExponentialMovingAverage` (``ema_type``) of the segmentor's
      ``inference_net()`` (backbone, neck, decode head), built on the student's
      device after the weights are initialised or loaded; it starts as a copy of
      the student (or as the teacher saved in a resumed checkpoint), stays in
      eval mode, and the segmentor gets its ``forward`` via ``set_teacher``.
    - ``after_train_iter``: one EMA step towards the student, only in iterations
      where the optimizer stepped (with gradient accumulation, once per step).
    - ``before_save_checkpoint``: ``checkpoint[checkpoint_key]`` = the teacher's
      ``state_dict`` (weights and the EMA step counter). The checkpoint's
      ``state_dict`` stays the student's alone, so it loads into a plain
      ``EncoderDecoder`` (``mmseg.apis.init_model``).
    - ``after_load_checkpoint``: on ``--resume`` the saved teacher is restored.
      Loading weights otherwise (``load_from``, testing) leaves the teacher to
      start from the loaded student, as ``EMAHook`` does.

    The teacher is never a submodule of ``runner.model``: it is not in the
    optimizer, DDP does not synchronise or differentiate it (its parameters have
    ``requires_grad=False`` and its forward runs under ``no_grad``), and
    ``model.train()`` does not switch it out of eval mode. Models without a
    teacher (``uses_teacher`` False or absent) are left alone; validation and
    testing build none.

    Args:
        ema_type: registered averaged-model type.
        momentum: mmengine's EMA momentum, ``teacher = (1 - m) teacher + m student``
            (**[decision]** 0.001, i.e. decay 0.999).
        update_buffers: also average BN statistics (False copies the student's, as
            ``EMAHook`` does by default).
        checkpoint_key: checkpoint entry holding the teacher.
        **kwargs: other arguments of ``ema_type`` (e.g. ``interval``).
    """

    priority = 'NORMAL'

    def __init__(self,
                 ema_type: str = 'ExponentialMovingAverage',
                 momentum: float = 0.001,
                 update_buffers: bool = False,
                 checkpoint_key: str = 'mars_teacher',
                 **kwargs) -> None:
        if not 0.0 < momentum < 1.0:
            raise ValueError(f'momentum must lie in (0, 1), got {momentum} '
                             '(mmengine convention: 0.001 means decay 0.999)')
        self.ema_cfg = dict(type=ema_type, momentum=momentum,
                            update_buffers=update_buffers, **kwargs)
        self.checkpoint_key = checkpoint_key
        self.teacher = None
        self._student = None
        self._resumed_state: Optional[dict] = None

    @staticmethod
    def _segmentor(runner):
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return model if getattr(model, 'uses_teacher', False) else None

    def before_train(self, runner) -> None:
        """Build the teacher from the (initialised or loaded) student."""
        model = self._segmentor(runner)
        if model is None:
            return
        self._student = model.inference_net()
        self.teacher = MODELS.build(self.ema_cfg,
                                    default_args=dict(model=self._student))
        self.teacher.eval()
        if self._resumed_state is not None:
            self.teacher.load_state_dict(self._resumed_state)
            self._resumed_state = None
        else:
            # The first EMA update copies the student: the teacher starts equal to
            # it, and every later update averages.
            self.teacher.update_parameters(self._student)
        model.set_teacher(self.teacher.forward)

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """One EMA step towards the student after the optimizer stepped."""
        if self.teacher is None or not self._optimizer_stepped(runner):
            return
        self.teacher.update_parameters(self._student)

    @staticmethod
    def _optimizer_stepped(runner) -> bool:
        # OptimWrapper.update_params steps when should_update() holds; the count it
        # reads is advanced by backward(), so after train_step the answer is this
        # iteration's. Wrappers without it (OptimWrapperDict) step every iteration.
        should_update = getattr(runner.optim_wrapper, 'should_update', None)
        return True if should_update is None else bool(should_update())

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the teacher under ``checkpoint_key`` (the student keeps
        ``state_dict``)."""
        if self.teacher is not None:
            checkpoint[self.checkpoint_key] = weights_to_cpu(self.teacher.state_dict())

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume, keep the saved teacher for ``before_train`` (or load it)."""
        if not runner._resume or self._segmentor(runner) is None:
            return
        if self.checkpoint_key not in checkpoint:
            print_log(f'the resumed checkpoint has no {self.checkpoint_key!r} entry: '
                      'the EMA teacher restarts from the student',
                      logger='current', level=logging.WARNING)
            return
        if self.teacher is not None:
            self.teacher.load_state_dict(checkpoint[self.checkpoint_key])
        else:
            self._resumed_state = checkpoint[self.checkpoint_key]
