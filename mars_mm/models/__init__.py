"""Registered models."""
from . import backbones, classifiers, heads, losses, segmentors, uss  # noqa: F401
