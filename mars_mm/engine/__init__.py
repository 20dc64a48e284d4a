"""Registered hooks and the checkpoint file backend."""
from . import atomic_backend, hooks  # noqa: F401
