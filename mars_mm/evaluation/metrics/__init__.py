"""Registration imports only."""
from . import tag_metric  # noqa: F401
