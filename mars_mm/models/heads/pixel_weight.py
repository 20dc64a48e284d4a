"""A per-pixel loss weight for any mmseg decode head, through its pixel sampler.

mmseg's ``BaseDecodeHead.loss_by_feat`` passes one weight map to every
``loss_decode``: the one its pixel sampler (``head.sampler``, e.g. OHEM) returns.
That is the head's only public door for a per-pixel weight, so MARS's
complementing weight ``W`` goes through it: :class:`GivenPixelWeight` is a pixel
sampler returning the weight given for the current batch, times the weight of
the head's own sampler if it has one, and :func:`pixel_weight` installs it on
heads for one loss computation. The head's loss code runs unchanged.
"""
import contextlib
from typing import Iterator, Optional

import torch.nn as nn
from mmseg.structures.sampler import BasePixelSampler
from torch import Tensor


class GivenPixelWeight(BasePixelSampler):
    """A pixel sampler that returns a given weight map.

    Args:
        weight: ``(N, H, W)`` weight of each pixel of the batch's labels.
        inner: the head's own sampler, whose weight multiplies ``weight``.
    """

    def __init__(self, weight: Tensor,
                 inner: Optional[BasePixelSampler] = None) -> None:
        super().__init__()
        self.weight = weight
        self.inner = inner

    def sample(self, seg_logit: Tensor, seg_label: Tensor) -> Tensor:
        """``(N, H, W)`` weight for ``seg_logit`` ``(N, K, H, W)`` and
        ``seg_label`` ``(N, 1, H, W)`` (mmseg's sampler interface)."""
        if self.inner is None:
            return self.weight
        return self.weight * self.inner.sample(seg_logit, seg_label)


@contextlib.contextmanager
def pixel_weight(heads: Iterator[nn.Module],
                 weight: Optional[Tensor]) -> Iterator[None]:
    """Weight every pixel of the heads' next losses by ``weight``.

    Args:
        heads: mmseg decode heads.
        weight: ``(N, H, W)`` weights of the batch's label pixels; None leaves
            the heads as they are.
    """
    heads = list(heads)
    samplers = [head.sampler for head in heads]
    try:
        if weight is not None:
            for head, sampler in zip(heads, samplers):
                head.sampler = GivenPixelWeight(weight, sampler)
        yield
    finally:
        for head, sampler in zip(heads, samplers):
            head.sampler = sampler
