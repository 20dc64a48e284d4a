"""Class activation maps: multi-scale + flip aggregation and CAM -> pseudo label.

Everything here works on plain tensors/arrays; the model only has to provide a
function that maps a normalised image batch to raw class activation maps.

Aggregation (the WSSS convention, e.g. IRN, Ahn et al. CVPR 2019): for every scale
``s`` and for the image and its horizontal mirror, compute the CAMs, ReLU them,
resize them (bilinear) to the image size, undo the flip and sum; keep the maps of the
image's tag classes and divide each by its maximum.

The batched path gives the same numbers as the obvious loop (see
``tests/test_core/test_cam.py``) but is cheaper because

* the mirrored copy rides in the batch dimension with the original (one forward per
  scale instead of two, and several same-size images can share it),
* the tag classes are selected *before* resizing (K maps instead of C), and
* the mirrored maps are un-flipped and added at the network's resolution, so only one
  upsampling per scale remains (bilinear resizing with ``align_corners=False`` is
  mirror-symmetric, so flipping commutes with it).
"""
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mars_mm.core.crf import CRFParams, crf_labels
from mars_mm.core.multiscale import DEFAULT_SCALES, scaled_views

#: Added to the maximum before max-normalisation (as IRN) so empty maps stay zero.
NORM_EPS = 1e-5

CamFunction = Callable[[torch.Tensor], torch.Tensor]


def max_normalise(cams: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """Divide each map of ``(..., H, W)`` by its maximum (+ ``eps``)."""
    peak = cams.flatten(-2).max(dim=-1).values if cams.numel() else cams.sum((-2, -1))
    return cams / (peak[..., None, None] + eps)


def _forward_chunks(cam_fn: CamFunction, batch: torch.Tensor,
                    max_batch: Optional[int]) -> torch.Tensor:
    """``cam_fn`` over ``batch`` in chunks of at most ``max_batch`` images."""
    if max_batch is None or batch.shape[0] <= max_batch:
        return cam_fn(batch)
    return torch.cat([cam_fn(chunk) for chunk in batch.split(max_batch)], dim=0)


def multiscale_cams(cam_fn: CamFunction,
                    images: torch.Tensor,
                    class_indices: Optional[torch.Tensor] = None,
                    scales: Sequence[float] = DEFAULT_SCALES,
                    flip: bool = True,
                    max_batch: Optional[int] = None) -> torch.Tensor:
    """Summed ReLU CAMs over scales and flips, batched (not normalised).

    Args:
        cam_fn: maps a ``(B, 3, h, w)`` normalised image batch to raw CAMs
            ``(B, C, h', w')`` (any stride; ReLU is applied here).
        images: ``(N, 3, H, W)`` normalised images of one size.
        class_indices: ``(K,)`` int64 channel indices (0-based) to keep; ``None``
            keeps all C channels.
        scales: image scales.
        flip: also use the horizontally mirrored images.
        max_batch: forward at most this many images at once (memory bound); the
            flipped copies count. ``None`` means the whole ``2N`` batch per scale.

    Returns:
        Tensor: ``(N, K, H, W)`` float32 sum of the resized maps.
    """
    height, width = images.shape[-2:]
    total = None
    for _, batch in scaled_views(images, scales, flip):
        cams = F.relu(_forward_chunks(cam_fn, batch, max_batch)).float()
        if class_indices is not None:
            cams = cams.index_select(1, class_indices.to(cams.device))
        if flip:
            num = images.shape[0]
            cams = cams[:num] + cams[num:].flip(-1)
        cams = F.interpolate(cams, size=(height, width), mode='bilinear',
                             align_corners=False)
        total = cams if total is None else total + cams
    return total


def image_cams(cam_fn: CamFunction,
               image: torch.Tensor,
               tags: Sequence[int],
               scales: Sequence[float] = DEFAULT_SCALES,
               flip: bool = True,
               max_batch: Optional[int] = None) -> torch.Tensor:
    """The stored CAMs of one image: tag classes only, each max-normalised.

    Args:
        cam_fn: see :func:`multiscale_cams`.
        image: ``(3, H, W)`` or ``(1, 3, H, W)`` normalised image.
        tags: foreground class ids in ``1..C`` (class ``c`` is channel ``c - 1``).
        scales, flip, max_batch: see :func:`multiscale_cams`.

    Returns:
        Tensor: ``(K, H, W)`` float32 in ``[0, 1)`` for the K sorted tags.
    """
    if image.dim() == 3:
        image = image[None]
    keys = torch.as_tensor(sorted(int(t) for t in tags), dtype=torch.long)
    height, width = image.shape[-2:]
    if keys.numel() == 0:
        return image.new_zeros((0, height, width), dtype=torch.float32)
    if int(keys.min()) < 1:
        raise ValueError(f'tags must be foreground class ids >= 1, got {keys.tolist()}')
    summed = multiscale_cams(cam_fn, image, keys - 1, scales, flip, max_batch)
    return max_normalise(summed[0])


def batch_image_cams(cam_fn: CamFunction,
                     images: torch.Tensor,
                     tags: Sequence[Sequence[int]],
                     scales: Sequence[float] = DEFAULT_SCALES,
                     flip: bool = True,
                     max_batch: Optional[int] = None) -> list:
    """:func:`image_cams` for N same-size images sharing each forward pass.

    Args:
        images: ``(N, 3, H, W)`` normalised images.
        tags: per image, its foreground class ids.

    Returns:
        list: N tensors ``(K_i, H, W)``, the CAMs of each image's sorted tags.
    """
    sorted_tags = [sorted(int(t) for t in image_tags) for image_tags in tags]
    union = sorted(set().union(*sorted_tags)) if sorted_tags else []
    height, width = images.shape[-2:]
    if not union:
        return [images.new_zeros((0, height, width)) for _ in sorted_tags]
    if union[0] < 1:
        raise ValueError(f'tags must be foreground class ids >= 1, got {union}')
    keys = torch.as_tensor(union, dtype=torch.long)
    summed = multiscale_cams(cam_fn, images, keys - 1, scales, flip, max_batch)
    position = {class_id: index for index, class_id in enumerate(union)}
    results = []
    for index, image_tags in enumerate(sorted_tags):
        rows = torch.as_tensor([position[t] for t in image_tags], dtype=torch.long,
                               device=summed.device)  # CUDA refuses a CPU index
        results.append(max_normalise(summed[index].index_select(0, rows)))
    return results


def background_score(cams: np.ndarray, bg_power: Optional[float] = None,
                     bg_threshold: Optional[float] = None) -> np.ndarray:
    """Background channel for ``(K, H, W)`` max-normalised CAMs.

    Exactly one of the two rules is used: ``(1 - max_k cam_k) ** bg_power`` (AffinityNet
    style, strong where no class fires) or the constant ``bg_threshold``.

    Returns:
        np.ndarray: ``(H, W)`` float32.
    """
    if (bg_power is None) == (bg_threshold is None):
        raise ValueError('give exactly one of bg_power and bg_threshold')
    height, width = cams.shape[-2:]
    if bg_threshold is not None:
        return np.full((height, width), bg_threshold, dtype=np.float32)
    peak = cams.max(axis=0) if cams.shape[0] else np.zeros((height, width))
    return np.power(np.clip(1.0 - peak, 0.0, 1.0), bg_power).astype(np.float32)


def cams_with_background(cams: np.ndarray, keys: Sequence[int],
                         bg_power: Optional[float] = None,
                         bg_threshold: Optional[float] = None) -> tuple:
    """Stack the background score on top of the CAMs.

    Args:
        cams: ``(K, H, W)`` max-normalised CAMs.
        keys: ``(K,)`` class ids of the maps.

    Returns:
        tuple: ``(K + 1, H, W)`` float32 scores and ``(K + 1,)`` int64 label ids
        (background 0 first).
    """
    cams = np.asarray(cams, dtype=np.float32)
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != keys.shape[0]:
        raise ValueError(f'cams {cams.shape} and keys {keys.shape} disagree')
    background = background_score(cams, bg_power, bg_threshold)
    scores = np.concatenate([background[None], cams], axis=0)
    return scores, np.concatenate([[0], keys]).astype(np.int64)


def cams_to_label(cams: np.ndarray, keys: Sequence[int],
                  image: Optional[np.ndarray] = None,
                  bg_power: Optional[float] = 2.0,
                  bg_threshold: Optional[float] = None,
                  crf_params: Optional[CRFParams] = CRFParams()) -> np.ndarray:
    """Pseudo label from CAMs: background score, optional dense CRF, argmax.

    The CRF sees only background + the image's classes (its cost grows with the
    number of labels, and absent classes cannot win anyway).

    Args:
        cams: ``(K, H, W)`` max-normalised CAMs.
        keys: ``(K,)`` class ids in ``1..C``.
        image: ``(H, W, 3)`` uint8 RGB, needed when ``crf_params`` is given.
        bg_power, bg_threshold: background rule (see :func:`background_score`);
            a given ``bg_threshold`` takes precedence over ``bg_power``.
        crf_params: CRF parameters; ``None`` skips the CRF.

    Returns:
        np.ndarray: ``(H, W)`` uint8 label ids in ``{0} + keys``.
    """
    if bg_threshold is not None:
        bg_power = None
    scores, label_ids = cams_with_background(cams, keys, bg_power, bg_threshold)
    if crf_params is None or len(label_ids) == 1:
        labels = label_ids[scores.argmax(axis=0)]
    else:
        if image is None:
            raise ValueError('the CRF needs the RGB image')
        labels = crf_labels(image, scores, label_ids, crf_params)
    return labels.astype(np.uint8)


def threshold_label(cams: np.ndarray, keys: Sequence[int],
                    threshold: float) -> np.ndarray:
    """CAM label at a background threshold (the standard CAM quality measure).

    Returns:
        np.ndarray: ``(H, W)`` uint8, the argmax over ``[threshold, cams]``.
    """
    scores, label_ids = cams_with_background(cams, keys, bg_threshold=threshold)
    return label_ids[scores.argmax(axis=0)].astype(np.uint8)
