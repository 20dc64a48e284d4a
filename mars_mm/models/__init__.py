"""Registered models."""
from . import classifiers, heads, losses, segmentors, uss  # noqa: F401
