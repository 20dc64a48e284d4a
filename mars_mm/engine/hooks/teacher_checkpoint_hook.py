"""Keep the MARS EMA teacher in checkpoints without leaking it into the model."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper

from mars_mm.registry import HOOKS


@HOOKS.register_module()
class TeacherCheckpointHook(Hook):
    """Save/restore ``MARSEncoderDecoder``'s teacher under its own checkpoint key.

    The segmentor's ``state_dict()`` holds only the student (what users load with
    ``mmseg.apis.init_model``). This hook stores the teacher's weights and EMA step
    counter under ``checkpoint[key]`` when saving, and gives them back to the model
    when a checkpoint is loaded (``--resume`` or ``load_from``), so that a resumed
    run continues with the same teacher. A checkpoint without the key leaves the
    teacher to be created from the student at the next training step.

    Args:
        key: checkpoint entry holding the teacher state.
    """

    priority = 'NORMAL'

    def __init__(self, key: str = 'mars_teacher') -> None:
        self.key = key

    @staticmethod
    def _segmentor(runner) -> Optional[object]:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        return model if hasattr(model, 'teacher_state_dict') else None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Add the teacher state (if the model has a teacher yet)."""
        model = self._segmentor(runner)
        if model is None:
            return
        state = model.teacher_state_dict()
        if state is not None:
            checkpoint[self.key] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Give a saved teacher back to the model."""
        model = self._segmentor(runner)
        if model is None:
            return
        if self.key in checkpoint:
            model.load_teacher_state_dict(checkpoint[self.key])
        else:
            print_log(f'checkpoint has no {self.key!r} entry: the EMA teacher will '
                      'start from the student at the next training step',
                      logger='current')
