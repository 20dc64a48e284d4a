"""Registration imports only."""
from . import cam_head  # noqa: F401
from .probes import ClusterProbe, LinearProbe  # noqa: F401
from .stego_head import STEGOHead  # noqa: F401
