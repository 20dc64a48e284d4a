"""STEGO's contrastive correlation loss as a registered module."""
from typing import Dict, Optional

import torch
from torch import Tensor, nn

from mars_mm.core.correlation import (
    CorrelationLossWeights,
    contrastive_correlation_loss,
    derangement,
    sample_coords,
)
from mars_mm.registry import MODELS


@MODELS.register_module()
class ContrastiveCorrelationLoss(nn.Module):
    """Draws the random points and negatives, then calls
    :func:`mars_mm.core.correlation.contrastive_correlation_loss`.

    Args:
        grid_size: S; S x S points are sampled per image (STEGO: 11).
        num_negatives: negative draws per anchor (STEGO: 5); each is a permutation
            of the negative pool without fixed points.
        self_weight, knn_weight, rand_weight: term weights.
        self_shift, knn_shift, rand_shift: the shifts ``b`` (tune per dataset: codes
            are pulled together where the centred feature correlation exceeds ``b``).
        pointwise: pointwise centring of feature correlations.
    """

    def __init__(self, grid_size: int = 11, num_negatives: int = 5,
                 self_weight: float = 0.67, knn_weight: float = 0.25,
                 rand_weight: float = 0.63, self_shift: float = 0.18,
                 knn_shift: float = 0.12, rand_shift: float = 0.46,
                 pointwise: bool = True) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.num_negatives = num_negatives
        self.weights = CorrelationLossWeights(
            self_weight=self_weight, knn_weight=knn_weight, rand_weight=rand_weight,
            self_shift=self_shift, knn_shift=knn_shift, rand_shift=rand_shift)
        self.pointwise = pointwise

    def forward(self, feats: Tensor, codes: Tensor, pos_feats: Tensor,
                pos_codes: Tensor, extra_neg_feats: Optional[Tensor] = None,
                extra_neg_codes: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Loss terms for ``B`` anchors.

        Args:
            feats: ``(B, C, h, w)`` anchor features; ``codes``: ``(B, D, h, w)``.
            pos_feats, pos_codes: the same for each anchor's kNN positive.
            extra_neg_feats, extra_neg_codes: optional extra negatives (e.g. random
                images drawn by the dataset), pooled with the anchors.

        Returns:
            dict: ``loss_self``, ``loss_knn``, ``loss_rand`` and unweighted
            ``corr_self``/``corr_knn``/``corr_rand`` for logging.
        """
        batch = feats.shape[0]
        pool_feats, pool_codes = feats, codes
        if extra_neg_feats is not None:
            pool_feats = torch.cat([feats, extra_neg_feats])
            pool_codes = torch.cat([codes, extra_neg_codes])
        coords = sample_coords(batch, self.grid_size, feats.device)
        pos_coords = sample_coords(batch, self.grid_size, feats.device)
        neg_indices = [derangement(pool_feats.shape[0], feats.device)[:batch]
                       for _ in range(self.num_negatives)]
        terms = contrastive_correlation_loss(
            feats, codes, pos_feats, pos_codes, coords, pos_coords, neg_indices,
            pool_feats, pool_codes, self.weights, self.pointwise)
        return dict(loss_self=terms['loss_self'], loss_knn=terms['loss_knn'],
                    loss_rand=terms['loss_rand'], corr_self=terms['self'],
                    corr_knn=terms['knn'], corr_rand=terms['rand'])
