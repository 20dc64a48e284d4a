"""STEGO's contrastive correlation loss as plain functions.

STEGO (Hamilton et al., ICLR 2022) trains a small head on top of frozen
self-supervised features so that the correlation of two *codes* follows the
correlation of the corresponding *features*. For two images A and B, random points are
sampled on each; ``fd[b, h, w, i, j]`` is the cosine similarity of the feature of A at
point ``(h, w)`` and the feature of B at point ``(i, j)``, ``cd`` the same for codes.
A term of the loss is ``mean(-clamp(cd, min=0) * (fd - shift))``: code correlations
are pushed up where the features agree more than ``shift`` and down elsewhere; the
clamp stops the loss from rewarding anti-correlated codes. ``fd`` never carries a
gradient (the backbone is frozen and the target must not move with the head).

Three kinds of pairs make the total loss: A with itself (``self``), A with one of its
nearest neighbours by global feature (``knn``), A with other images of the batch
(``rand``, several negatives averaged).

Every function here works on plain tensors; sampling coordinates and negative
permutations are explicit arguments so that tests can replay them.
"""
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class CorrelationLossWeights:
    """Weights and shifts of the three terms (STEGO's ViT-small preset by default)."""

    self_weight: float = 0.67
    knn_weight: float = 0.25
    rand_weight: float = 0.63
    self_shift: float = 0.18
    knn_shift: float = 0.12
    rand_shift: float = 0.46


def sample_coords(batch_size: int, grid_size: int, device: torch.device,
                  generator: Optional[torch.Generator] = None) -> Tensor:
    """``grid_size x grid_size`` random points per image, uniform in ``[-1, 1]^2``.

    Returns:
        Tensor: ``(B, S, S, 2)`` ``(x, y)`` coordinates in ``grid_sample`` convention.
    """
    coords = torch.rand(batch_size, grid_size, grid_size, 2, generator=generator,
                        device='cpu' if generator is not None else device)
    return (coords * 2 - 1).to(device)


def sample_at(maps: Tensor, coords: Tensor) -> Tensor:
    """Bilinearly sample ``maps`` at ``coords`` (corners aligned, border padding).

    Args:
        maps: ``(B, C, H, W)`` feature or code maps.
        coords: ``(B, S, S, 2)`` points in ``[-1, 1]^2``, ``(x, y)`` order.

    Returns:
        Tensor: ``(B, C, S, S)`` sampled vectors.
    """
    return F.grid_sample(maps, coords.to(maps.dtype), mode='bilinear',
                         padding_mode='border', align_corners=True)


def correlation(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every point of ``a`` with every point of ``b``.

    Args:
        a: ``(B, C, H, W)``.
        b: ``(B, C, I, J)``.

    Returns:
        Tensor: ``(B, H, W, I, J)``.
    """
    return torch.einsum('nchw,ncij->nhwij', F.normalize(a, dim=1),
                        F.normalize(b, dim=1))


def pointwise_centre(fd: Tensor) -> Tensor:
    """Subtract, per query point ``(h, w)``, the mean over ``(i, j)``; add back the
    global mean.

    This removes the part of a feature correlation that only says "this query point
    resembles everything" (common for some DINO tokens) while keeping the overall
    level that the shift is tuned against.

    Args:
        fd: ``(B, H, W, I, J)`` feature correlations.
    """
    return fd - fd.mean(dim=(3, 4), keepdim=True) + fd.mean()


def correlation_term(feats_a: Tensor, feats_b: Tensor, codes_a: Tensor,
                     codes_b: Tensor, shift: float,
                     pointwise: bool = True) -> Tuple[Tensor, Tensor]:
    """One term of the loss for sampled features and codes of two image sets.

    Args:
        feats_a: ``(B, C, S, S)`` sampled backbone features of images A.
        feats_b: ``(B, C, S, S)`` sampled backbone features of images B.
        codes_a: ``(B, D, S, S)`` sampled codes of images A.
        codes_b: ``(B, D, S, S)`` sampled codes of images B.
        shift: the ``b`` of ``fd - b``.
        pointwise: apply :func:`pointwise_centre` to ``fd``.

    Returns:
        tuple: the scalar loss and the code correlation ``cd`` ``(B, S, S, S, S)``.
    """
    with torch.no_grad():
        fd = correlation(feats_a, feats_b)
        if pointwise:
            fd = pointwise_centre(fd)
    cd = correlation(codes_a, codes_b)
    loss = -(cd.clamp(min=0) * (fd - shift)).mean()
    return loss, cd


def derangement(size: int, device: torch.device,
                generator: Optional[torch.Generator] = None) -> Tensor:
    """A random permutation of ``range(size)`` without fixed points.

    A random order of the indices closed into one cycle: every index is sent to the
    next one in that order, so no index maps to itself.

    Raises:
        ValueError: if ``size < 2`` (no derangement exists).
    """
    if size < 2:
        raise ValueError(f'a negative pair needs at least 2 images, got {size}')
    order = torch.randperm(size, generator=generator)
    perm = torch.empty(size, dtype=torch.long)
    perm[order] = order.roll(-1)
    return perm.to(device)


def contrastive_correlation_loss(
        feats: Tensor, codes: Tensor, pos_feats: Tensor, pos_codes: Tensor,
        coords: Tensor, pos_coords: Tensor, neg_indices: Sequence[Tensor],
        neg_pool_feats: Optional[Tensor] = None,
        neg_pool_codes: Optional[Tensor] = None,
        weights: CorrelationLossWeights = CorrelationLossWeights(),
        pointwise: bool = True) -> Dict[str, Tensor]:
    """STEGO's loss for a batch of anchors, their kNN positives and negatives.

    Args:
        feats: ``(B, C, H, W)`` frozen features of the anchors.
        codes: ``(B, D, H, W)`` codes of the anchors.
        pos_feats: ``(B, C, H, W)`` features of each anchor's kNN positive.
        pos_codes: ``(B, D, H, W)`` codes of the positives.
        coords: ``(B, S, S, 2)`` points sampled on the anchors.
        pos_coords: ``(B, S, S, 2)`` points sampled on positives and negatives.
        neg_indices: one ``(B,)`` index tensor per negative draw; entry ``n`` names
            the image of the negative pool paired with anchor ``n`` (never ``n``
            itself when the pool starts with the anchors).
        neg_pool_feats: ``(P, C, H, W)`` negative pool; defaults to ``feats``.
        neg_pool_codes: ``(P, D, H, W)`` negative pool codes; defaults to ``codes``.
        weights: term weights and shifts.
        pointwise: pointwise centring of the feature correlations.

    Returns:
        dict: ``loss_self``, ``loss_knn``, ``loss_rand`` (already weighted; their
        sum is the total) and unweighted ``self``/``knn``/``rand`` values.
    """
    if neg_pool_feats is None:
        neg_pool_feats, neg_pool_codes = feats, codes
    feats = feats.detach()
    pos_feats = pos_feats.detach()
    neg_pool_feats = neg_pool_feats.detach()
    sampled_feats = sample_at(feats, coords)
    sampled_codes = sample_at(codes, coords)
    self_loss, _ = correlation_term(sampled_feats, sampled_feats, sampled_codes,
                                    sampled_codes, weights.self_shift, pointwise)
    knn_loss, _ = correlation_term(sampled_feats, sample_at(pos_feats, pos_coords),
                                   sampled_codes, sample_at(pos_codes, pos_coords),
                                   weights.knn_shift, pointwise)
    rand_losses = []
    for index in neg_indices:
        neg_loss, _ = correlation_term(
            sampled_feats, sample_at(neg_pool_feats[index], pos_coords),
            sampled_codes, sample_at(neg_pool_codes[index], pos_coords),
            weights.rand_shift, pointwise)
        rand_losses.append(neg_loss)
    rand_loss = torch.stack(rand_losses).mean() if rand_losses \
        else codes.new_zeros(())
    return dict(
        loss_self=weights.self_weight * self_loss,
        loss_knn=weights.knn_weight * knn_loss,
        loss_rand=weights.rand_weight * rand_loss,
        self=self_loss.detach(), knn=knn_loss.detach(), rand=rand_loss.detach())
