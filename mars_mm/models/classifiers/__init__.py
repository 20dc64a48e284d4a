"""Registration imports only."""
from . import cam_classifier  # noqa: F401
