"""Registration imports only."""
from . import tag_metric  # noqa: F401
from . import seg_fpfn_metric  # noqa: F401
from .uss_metric import USSMetric  # noqa: F401
