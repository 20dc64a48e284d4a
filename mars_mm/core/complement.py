"""Stage 4 of MARS: complementing removed pixels with a teacher, and weighted CE.

MARS (Jo, Yu, Kim, ICCV 2023, arXiv 2304.09913) trains the segmentation network on
debiased labels ``Y_db`` in which removed foreground pixels carry ``BIASED`` (254).
An EMA teacher fills them in:

- ``Y_co = Y_db`` with every ``BIASED`` pixel replaced by the teacher's argmax;
- ``W = max_{c in C_I} P_t(c)`` at ``BIASED`` pixels, ``1`` elsewhere, where ``C_I``
  are the image's tag (foreground) classes;
- ``loss = sum(W * CE(P_student, Y_co)) / #non-ignored pixels``; 255 stays ignored.
  That is mmseg's ``CrossEntropyLoss(avg_non_ignore=True)`` called with ``weight=W``
  (the heads' own losses, see the segmentor), so no loss is implemented here.

**[decision]** Background is *not* in ``C_I`` (the spec's max is over the image's
foreground tags): a removed pixel the teacher calls background is kept as background
but counts only as much as the teacher believes it could still be one of the
image's objects. ``include_background=True`` in :func:`candidate_class_mask` adds it.
An image without tags gets weight 0 at its removed pixels (a max over the empty set).

Everything here is plain torch on tensors; the registered segmentor
(``mars_mm.models.segmentors.MARSEncoderDecoder``) only wires it to the model and
its heads' losses.
"""
from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX


def candidate_class_mask(img_tags: Sequence[Sequence[int]], num_classes: int,
                         include_background: bool = False,
                         device: Optional[torch.device] = None) -> Tensor:
    """Boolean mask of the classes each image's weight may take its max over.

    Args:
        img_tags: per image, its foreground class ids in ``1..num_classes-1``.
        num_classes: number of output channels K (background included).
        include_background: also allow class 0.
        device: device of the returned mask.

    Returns:
        Tensor: ``(N, K)`` bool, True at the image's tag classes (and 0 if asked).

    Raises:
        ValueError: a tag outside ``1..K-1``.
    """
    mask = torch.zeros(len(img_tags), num_classes, dtype=torch.bool, device=device)
    for index, tags in enumerate(img_tags):
        tags = torch.as_tensor(list(tags), dtype=torch.long).reshape(-1)
        if tags.numel() and (tags.min() < 1 or tags.max() >= num_classes):
            raise ValueError(f'image {index}: tag ids must lie in 1..{num_classes - 1}'
                             f', got {tags.tolist()}')
        mask[index, tags.to(mask.device)] = True
        if include_background:
            mask[index, 0] = True
    return mask


def complement_labels(labels: Tensor, teacher_probs: Tensor,
                      candidate_mask: Tensor,
                      biased_index: int = BIASED_INDEX) -> Tuple[Tensor, Tensor]:
    """Fill ``BIASED`` pixels with the teacher's argmax and weight them.

    Args:
        labels: ``(N, H, W)`` int labels ``Y_db`` (classes, ``biased_index``, 255).
        teacher_probs: ``(N, K, H, W)`` teacher class probabilities ``P_t``.
        candidate_mask: ``(N, K)`` bool, the classes ``C_I`` of each image
            (see :func:`candidate_class_mask`).
        biased_index: label value of removed pixels.

    Returns:
        tuple: ``labels_co`` ``(N, H, W)`` int64, equal to ``labels`` except at
        ``BIASED`` pixels, which hold ``argmax_k P_t``; ``weights`` ``(N, H, W)``
        float, ``max_{c in C_I} P_t(c)`` at ``BIASED`` pixels and 1 elsewhere.
    """
    if teacher_probs.shape[0] != labels.shape[0] or \
            teacher_probs.shape[2:] != labels.shape[1:]:
        raise ValueError(f'teacher probabilities {tuple(teacher_probs.shape)} do not '
                         f'match labels {tuple(labels.shape)}')
    if candidate_mask.shape != teacher_probs.shape[:2]:
        raise ValueError(f'candidate mask {tuple(candidate_mask.shape)} must be '
                         f'(N, K) = {tuple(teacher_probs.shape[:2])}')
    labels = labels.long()
    biased = labels == biased_index
    teacher_labels = teacher_probs.argmax(dim=1)
    # Non-candidate classes get -1 so that they never win the max (probs >= 0);
    # an image with no candidate then yields max = -1, clamped to weight 0.
    masked = teacher_probs.masked_fill(~candidate_mask[:, :, None, None], -1.0)
    confidence = masked.amax(dim=1).clamp(min=0)
    labels_co = torch.where(biased, teacher_labels, labels)
    weights = torch.where(biased, confidence.to(teacher_probs.dtype),
                          torch.ones_like(confidence, dtype=teacher_probs.dtype))
    return labels_co, weights


def ignore_biased(labels: Tensor, biased_index: int = BIASED_INDEX,
                  ignore_index: int = IGNORE_INDEX) -> Tensor:
    """``labels`` with removed pixels turned into ignored ones (no complementing)."""
    labels = labels.long()
    return labels.masked_fill(labels == biased_index, ignore_index)


def complement_statistics(labels: Tensor, weights: Optional[Tensor],
                          biased_index: int = BIASED_INDEX,
                          ignore_index: int = IGNORE_INDEX) -> Dict[str, Tensor]:
    """Share of complemented pixels among labelled ones, and their mean weight.

    Args:
        labels: ``(N, H, W)`` labels *before* complementing.
        weights: ``(N, H, W)`` weights from :func:`complement_labels` (None: all 1).

    Returns:
        dict: ``complement_ratio`` and ``complement_weight`` (0-d float tensors;
        the weight is 0 when nothing was complemented).
    """
    biased = labels == biased_index
    labelled = (labels != ignore_index).sum().clamp(min=1)
    num_biased = biased.sum()
    if weights is None or num_biased == 0:
        mean_weight = biased.new_tensor(float(num_biased > 0), dtype=torch.float32)
    else:
        mean_weight = weights[biased].float().mean()
    return dict(complement_ratio=num_biased.float() / labelled.float(),
                complement_weight=mean_weight)
