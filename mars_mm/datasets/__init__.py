"""Registered datasets and transforms."""
from . import transforms  # noqa: F401
from .uss_pair_dataset import USSPairDataset  # noqa: F401
