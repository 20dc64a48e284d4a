"""Registration imports only."""
from .correlation_loss import ContrastiveCorrelationLoss  # noqa: F401
