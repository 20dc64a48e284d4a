"""Official DINOv2 ViT checkpoints to mmpretrain's ``VisionTransformer`` layout.

DINOv2 (Oquab et al., 2023, facebookresearch/dinov2) publishes backbone weights
(``dinov2_vit{s,b,l,g}14_pretrain.pth``) with timm-like keys. Its ViT is DINO's plus
two things mmpretrain 1.2's ``VisionTransformer`` has as options: *layer scale*
(``blocks.N.ls1.gamma`` / ``ls2.gamma``, a per-channel factor on each residual
branch: ``layer_scale_init_value > 0``, keys ``attn.gamma1.weight`` /
``ffn.gamma2.weight``) and, in ViT-g, a fused *SwiGLU* feed-forward
(``mlp.w12`` / ``mlp.w3``: ``layer_cfgs=dict(ffn_type='swiglu_fused')``). The
conversion is a renaming; ``mask_token`` (used only by masked training) is dropped.
The *registers* variants (``dinov2_vit*14_reg4``) add tokens mmpretrain's ViT does
not have and are refused.

DINOv2 resizes position embeddings for other inputs the way DINO does (bicubic,
scale factor ``(patches + 0.1) / S``), so ``DINOVisionTransformer`` runs the
converted weights as DINOv2 itself.
"""
import math
import re
from collections import OrderedDict
from typing import Dict, Mapping

from torch import Tensor

from .dino_convert import unwrap_dino_checkpoint

_BLOCK_RENAMES = {
    'norm1.weight': 'ln1.weight',
    'norm1.bias': 'ln1.bias',
    'attn.qkv.weight': 'attn.qkv.weight',
    'attn.qkv.bias': 'attn.qkv.bias',
    'attn.proj.weight': 'attn.proj.weight',
    'attn.proj.bias': 'attn.proj.bias',
    'ls1.gamma': 'attn.gamma1.weight',
    'norm2.weight': 'ln2.weight',
    'norm2.bias': 'ln2.bias',
    'mlp.fc1.weight': 'ffn.layers.0.0.weight',
    'mlp.fc1.bias': 'ffn.layers.0.0.bias',
    'mlp.fc2.weight': 'ffn.layers.1.weight',
    'mlp.fc2.bias': 'ffn.layers.1.bias',
    'mlp.w12.weight': 'ffn.w12.weight',
    'mlp.w12.bias': 'ffn.w12.bias',
    'mlp.w3.weight': 'ffn.w3.weight',
    'mlp.w3.bias': 'ffn.w3.bias',
    'ls2.gamma': 'ffn.gamma2.weight',
}
_TOP_RENAMES = {
    'cls_token': 'cls_token',
    'pos_embed': 'pos_embed',
    'patch_embed.proj.weight': 'patch_embed.projection.weight',
    'patch_embed.proj.bias': 'patch_embed.projection.bias',
    'norm.weight': 'ln1.weight',
    'norm.bias': 'ln1.bias',
}
_DROPPED = ('mask_token', )
#: heads of DINOv2's training checkpoints, not part of the backbone
_HEAD_PREFIXES = ('dino_head.', 'ibot_head.')
# ``blocks.N.`` in the released files; ``blocks.C.N.`` (chunked blocks of DINOv2's
# FSDP training, N still the global block index) in its training checkpoints
_BLOCK_KEY = re.compile(r'^blocks\.(?:\d+\.)?(\d+)\.(.+)$')


def convert_dinov2_to_mmpretrain(checkpoint: Mapping) -> Dict[str, Tensor]:
    """Rename a DINOv2 ViT checkpoint's keys to mmpretrain ``VisionTransformer`` keys.

    Args:
        checkpoint: a released backbone file (a plain state dict) or a training
            checkpoint (``teacher`` / ``model`` / ``state_dict`` wrappers and
            ``module.`` / ``backbone.`` prefixes are removed, heads dropped).

    Raises:
        ValueError: for a registers variant (``register_tokens``).
        KeyError: naming the first key that is not part of a DINOv2 ViT.
    """
    state = unwrap_dino_checkpoint(checkpoint)
    if 'register_tokens' in state:
        raise ValueError('a DINOv2 checkpoint with registers (register_tokens, the '
                         '*_reg4 models): mmpretrain\'s VisionTransformer has no '
                         'register tokens; use the model without registers')
    converted = OrderedDict()
    for name, value in state.items():
        if name in _DROPPED or name.startswith(_HEAD_PREFIXES):
            continue
        if name in _TOP_RENAMES:
            converted[_TOP_RENAMES[name]] = value
            continue
        match = _BLOCK_KEY.match(name)
        if match is None or match.group(2) not in _BLOCK_RENAMES:
            raise KeyError(f'unexpected key in a DINOv2 ViT checkpoint: {name!r}')
        converted[f'layers.{match.group(1)}.{_BLOCK_RENAMES[match.group(2)]}'] = value
    return converted


def infer_dinov2_arch(state: Mapping[str, Tensor], head_dims: int = 64) -> dict:
    """mmpretrain ``VisionTransformer`` arguments matching a converted state dict.

    The head count is not stored in the weights; every DINOv2 ViT (S 6, B 12, L 16,
    g 24 heads) has 64 channels per head. ``img_size`` is the position-embedding
    grid times the patch (518 for the released models).
    """
    embed_dims = state['cls_token'].shape[-1]
    num_layers = 1 + max(int(key.split('.')[1]) for key in state
                         if key.startswith('layers.'))
    patch_size = state['patch_embed.projection.weight'].shape[-1]
    side = math.isqrt(state['pos_embed'].shape[1] - 1)
    settings = dict(patch_size=patch_size, img_size=side * patch_size,
                    layer_scale_init_value=1e-5
                    if 'layers.0.attn.gamma1.weight' in state else 0.)
    if 'layers.0.ffn.w12.weight' in state:
        # mmpretrain sizes the fused SwiGLU hidden layer as 2/3 of
        # feedforward_channels (rounded up to 8): DINOv2's rule for ViT-g
        hidden = state['layers.0.ffn.w12.weight'].shape[0] // 2
        feedforward = hidden * 3 // 2
        settings['layer_cfgs'] = dict(ffn_type='swiglu_fused')
    else:
        feedforward = state['layers.0.ffn.layers.0.0.weight'].shape[0]
    settings['arch'] = dict(embed_dims=embed_dims, num_layers=num_layers,
                            num_heads=embed_dims // head_dims,
                            feedforward_channels=feedforward)
    return settings
