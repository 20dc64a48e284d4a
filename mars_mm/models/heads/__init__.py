"""Registration imports only."""
from . import cam_head  # noqa: F401
