"""Registration imports only."""
from . import (
    seg_fpfn_metric,  # noqa: F401
    tag_metric,  # noqa: F401
)
from .uss_metric import USSMetric  # noqa: F401
