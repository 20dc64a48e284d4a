"""Official DINO ViT checkpoints to mmpretrain's ``VisionTransformer`` layout.

DINO (Caron et al., 2021) publishes backbone weights with timm-style keys
(``blocks.N.attn.qkv`` ...); mmpretrain names the same tensors differently
(``layers.N.attn.qkv``, ``ln1``/``ln2``, ``ffn.layers``). Shapes and maths are
identical (pre-norm blocks, fused qkv, GELU MLP, final LayerNorm), so conversion is a
pure renaming. The one behavioural difference is how position embeddings are resized
for inputs other than the training resolution: :func:`dino_resize_pos_embed` does it
DINO's way (used by ``DINOVisionTransformer``).
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Mapping, Tuple

import torch
import torch.nn.functional as F
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
_ALIGNABLE = ('linear', 'bilinear', 'bicubic', 'trilinear')  # take align_corners
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


def dino_resize_pos_embed(pos_embed: Tensor, dst_shape: Tuple[int, int],
                          num_extra_tokens: int = 1,
                          mode: str = 'bicubic') -> Tensor:
    """Position embeddings for a ``rows x cols`` patch grid, resized as DINO does.

    DINO stores embeddings for a square ``S x S`` grid (the training resolution). For
    any other grid it resamples them with ``F.interpolate`` given a *scale factor*
    per axis, ``(rows + 0.1) / S`` for the rows and ``(cols + 0.1) / S`` for the
    columns (the 0.1 only makes the floored output size come out as ``rows x cols``
    despite rounding), corners not aligned. PyTorch places the samples by that
    scale factor, not by the ratio of output to input size, so the result differs
    slightly from resizing to ``size=(rows, cols)`` (mmpretrain's
    ``resize_pos_embed``): a small random 2-layer ViT with DINO's 28 x 28 grid gives
    final features about 0.1 apart on a 160 x 224 image. When the grid is the
    stored ``S x S`` one the embeddings are returned untouched, as in DINO.

    Args:
        pos_embed: ``(1, E + S * S, C)`` embeddings, the ``E`` extra tokens (the class
            token) first, then the grid row by row.
        dst_shape: ``(rows, cols)`` of the patch grid of the current input.
        num_extra_tokens: ``E``, tokens that are not resized.
        mode: interpolation mode; DINO uses ``'bicubic'``.

    Returns:
        ``(1, E + rows * cols, C)`` embeddings, same dtype as ``pos_embed``.

    Raises:
        ValueError: if the stored grid is not square.
    """
    _, length, dims = pos_embed.shape
    side = math.isqrt(length - num_extra_tokens)
    if side * side != length - num_extra_tokens:
        raise ValueError(f'{length - num_extra_tokens} position embeddings do not '
                         'form a square grid')
    rows, cols = int(dst_shape[0]), int(dst_shape[1])
    if (rows, cols) == (side, side):
        return pos_embed
    grid = pos_embed[:, num_extra_tokens:].reshape(1, side, side, dims)
    # bicubic needs float32 (float16 is not implemented on every device)
    grid = F.interpolate(grid.permute(0, 3, 1, 2).float(),
                         scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
                         mode=mode, align_corners=False if mode in _ALIGNABLE else None)
    assert tuple(grid.shape[-2:]) == (rows, cols), grid.shape
    grid = grid.flatten(2).transpose(1, 2).to(pos_embed.dtype)
    return torch.cat((pos_embed[:, :num_extra_tokens], grid), dim=1)
