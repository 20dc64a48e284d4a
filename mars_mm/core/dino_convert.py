"""Official DINO ViT checkpoints to mmpretrain's ``VisionTransformer`` layout.

DINO (Caron et al., 2021) publishes backbone weights with timm-style keys
(``blocks.N.attn.qkv`` ...); mmpretrain names the same tensors differently
(``layers.N.attn.qkv``, ``ln1``/``ln2``, ``ffn.layers``). Shapes and maths are
identical (pre-norm blocks, fused qkv, GELU MLP, final LayerNorm), so conversion is a
pure renaming.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Mapping

from torch import Tensor

_BLOCK_RENAMES = {
    'norm1': 'ln1',
    'attn.qkv': 'attn.qkv',
    'attn.proj': 'attn.proj',
    'norm2': 'ln2',
    'mlp.fc1': 'ffn.layers.0.0',
    'mlp.fc2': 'ffn.layers.1',
}
_TOP_RENAMES = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}
_BLOCK_KEY = re.compile(r'^blocks\.(\d+)\.(.+)\.(weight|bias)$')


def unwrap_dino_checkpoint(checkpoint: Mapping) -> Dict[str, Tensor]:
    """The backbone state dict of a DINO file.

    Accepts the released backbone-only files (a plain state dict), DINO's full
    training checkpoints (``teacher`` with ``module.backbone.`` prefixes; the teacher
    is the model DINO evaluates) and ``state_dict``/``model`` wrappers. Projection
    head weights (``head.*``) are dropped.
    """
    for key in ('teacher', 'state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            checkpoint = checkpoint[key]
            break
    state = OrderedDict()
    for name, value in checkpoint.items():
        for prefix in ('module.', 'backbone.'):
            if name.startswith(prefix):
                name = name[len(prefix):]
        if name.startswith('head.'):
            continue
        state[name] = value
    return state


def convert_dino_to_mmpretrain(state: Mapping[str, Tensor]) -> Dict[str, Tensor]:
    """Rename DINO ViT keys to mmpretrain ``VisionTransformer`` keys.

    Raises:
        KeyError: naming the first key that is not part of a DINO ViT.
    """
    converted = OrderedDict()
    for name, value in state.items():
        if name in _TOP_RENAMES:
            converted[_TOP_RENAMES[name]] = value
            continue
        match = _BLOCK_KEY.match(name)
        if match is None or match.group(2) not in _BLOCK_RENAMES:
            raise KeyError(f'unexpected key in a DINO ViT checkpoint: {name!r}')
        index, module, kind = match.groups()
        converted[f'layers.{index}.{_BLOCK_RENAMES[module]}.{kind}'] = value
    return converted


def infer_vit_arch(state: Mapping[str, Tensor], head_dims: int = 64) -> dict:
    """mmpretrain ``VisionTransformer`` arguments matching a converted state dict.

    The number of heads is not stored in the weights; DINO's ViT-S and ViT-B both use
    64 channels per head.
    """
    embed_dims = state['cls_token'].shape[-1]
    num_layers = 1 + max(int(key.split('.')[1]) for key in state
                         if key.startswith('layers.'))
    patch_size = state['patch_embed.projection.weight'].shape[-1]
    num_patches = state['pos_embed'].shape[1] - 1
    side = math.isqrt(num_patches)
    return dict(
        arch=dict(embed_dims=embed_dims, num_layers=num_layers,
                  num_heads=embed_dims // head_dims,
                  feedforward_channels=state['layers.0.ffn.layers.0.0.weight']
                  .shape[0]),
        patch_size=patch_size, img_size=side * patch_size)
