"""Registration imports only."""
from .crf_seg_tta import CRFSegTTAModel  # noqa: F401
from .mars_encoder_decoder import MARSEncoderDecoder  # noqa: F401
