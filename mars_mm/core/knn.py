"""Nearest neighbours by cosine similarity, in chunks so that large sets fit.

STEGO pairs every training image with one of its ``k`` nearest neighbours by global
(mean-pooled) backbone feature. For COCO (80k images) the full ``N x N`` similarity
matrix would need 26 GB in float32, so queries are processed ``chunk_size`` rows at a
time and only the running top-k is kept.
"""
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F


def centre_features(features: torch.Tensor) -> torch.Tensor:
    """Subtract the mean vector over the set (for untrained features, whose raw
    cosine similarities are all close to 1)."""
    return features - features.mean(dim=0, keepdim=True)


def cosine_topk(features: torch.Tensor, k: int, chunk_size: int = 1024,
                exclude_self: bool = True,
                device: Optional[torch.device] = None) -> np.ndarray:
    """Indices of the ``k`` most cosine-similar rows for every row.

    Args:
        features: ``(N, D)`` global features (any float dtype).
        k: neighbours per row.
        chunk_size: query rows per matrix product (memory ``chunk_size * N``).
        exclude_self: never return a row as its own neighbour.
        device: where to compute; defaults to the features' device.

    Returns:
        np.ndarray: ``(N, k)`` int64, most similar first (ties in any order).

    Raises:
        ValueError: if fewer than ``k`` candidates exist.
    """
    num = features.shape[0]
    candidates = num - 1 if exclude_self else num
    if k > candidates:
        raise ValueError(f'asked for {k} neighbours among {candidates} candidates')
    device = device or features.device
    keys = F.normalize(features.float().to(device), dim=1)
    result = np.empty((num, k), dtype=np.int64)
    for start in range(0, num, chunk_size):
        stop = min(start + chunk_size, num)
        sims = keys[start:stop] @ keys.T
        if exclude_self:
            rows = torch.arange(stop - start, device=device)
            sims[rows, rows + start] = -float('inf')
        result[start:stop] = torch.topk(sims, k, dim=1).indices.cpu().numpy()
    return result
