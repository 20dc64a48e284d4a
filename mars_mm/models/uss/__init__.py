"""Registration imports only."""
from .data_preprocessor import USSDataPreProcessor  # noqa: F401
from .dino_vit import DINOVisionTransformer  # noqa: F401
from .frozen_backbone import FrozenBackbone  # noqa: F401
from .stego import STEGO  # noqa: F401
