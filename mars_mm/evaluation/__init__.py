"""Registered metrics."""
from . import metrics  # noqa: F401
