"""Registration imports only."""
from .debias_pseudo_label import DebiasPseudoLabel  # noqa: F401
