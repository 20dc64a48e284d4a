"""mmpretrain's ViT with DINO's position-embedding resizing."""
from typing import Tuple

import torch
from mmpretrain.models import VisionTransformer
from torch import Tensor

from mars_mm.core.dino_convert import dino_resize_pos_embed
from mars_mm.registry import MODELS


@MODELS.register_module()
class DINOVisionTransformer(VisionTransformer):
    """``mmpretrain.VisionTransformer`` that resizes position embeddings like DINO.

    Same arguments, parameters and checkpoint keys as the parent (weights from
    ``tools/model_converters/dino_to_mmpretrain.py`` load strictly). Only the
    resizing of the position embeddings for an input whose patch grid differs from
    ``img_size / patch_size`` changes: :func:`~mars_mm.core.dino_convert.
    dino_resize_pos_embed` (scale-factor sampling) instead of mmpretrain's resize to
    the output size, so features of non-square images match DINO's own ViT. Keep
    ``img_size`` at the checkpoint's training size (224 for DINO): a different one
    would make mmpretrain resize the stored embeddings at load time, its own way.
    """

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """``(B, 3, H, W)`` images -> one output per ``out_indices`` entry, shaped
        by ``out_type`` (``'featmap'``: ``(B, C, H / p, W / p)``)."""
        tokens, grid = self.patch_embed(x)
        if self.cls_token is not None:
            tokens = torch.cat(
                (self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        pos_embed = dino_resize_pos_embed(self.pos_embed, grid,
                                          num_extra_tokens=self.num_extra_tokens,
                                          mode=self.interpolate_mode)
        tokens = self.pre_norm(self.drop_after_pos(tokens + pos_embed))
        outs = []
        for index, layer in enumerate(self.layers):
            tokens = layer(tokens)
            if index == len(self.layers) - 1 and self.final_norm:
                tokens = self.ln1(tokens)
            if index in self.out_indices:
                outs.append(self._format_output(tokens, grid))
        return tuple(outs)
