"""Registration imports only."""
from .colour_texture import ColourTextureEmbedding  # noqa: F401
from .data_preprocessor import USSDataPreProcessor  # noqa: F401
from .dense_embedder import DenseEmbedder  # noqa: F401
from .dino_vit import DINOVisionTransformer  # noqa: F401
from .frozen_backbone import FrozenBackbone  # noqa: F401
from .stego import STEGO  # noqa: F401
