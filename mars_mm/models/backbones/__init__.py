"""Registration imports only."""
from .plain_convnet import PlainConvNet  # noqa: F401
