"""Registration imports only."""
from .teacher_checkpoint_hook import TeacherCheckpointHook  # noqa: F401
