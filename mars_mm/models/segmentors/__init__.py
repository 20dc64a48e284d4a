"""Registration imports only."""
from .mars_encoder_decoder import MARSEncoderDecoder  # noqa: F401
