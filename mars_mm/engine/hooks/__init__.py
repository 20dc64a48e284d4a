"""Registration imports only."""
from .atomic_checkpoint_hook import AtomicCheckpointHook  # noqa: F401
from .ema_teacher_hook import EMATeacherHook  # noqa: F401
from .finite_loss_hook import FiniteLossHook  # noqa: F401
from .random_state_hook import RandomStateHook  # noqa: F401
