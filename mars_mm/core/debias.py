"""MARS Stage 3: debiased centroids, debias maps and debiased labels.

Plain functions on numpy/torch arrays (no runner, no files); the streaming job in
:mod:`mars_mm.debias` and the ``DebiasPseudoLabel`` transform call them.
The steps follow ``docs/en/method.md`` (Stage 3):

1. :func:`image_centroids`: per (image, class of the pseudo label ``Y_b``) spherical
   k-means on L2-normalised embeddings (``K_fg`` / ``K_bg`` clusters); labels are
   resized to the feature grid by pixel-centre nearest sampling; 255 (ignore) and 254
   (removed) are excluded. Optionally the embeddings are mean-centred over the dataset
   before normalisation (:func:`normalise_embedding`).
2. :func:`distance_to_background`: ``dist(v) = mean_j (1 - v.b_j) / 2`` over all
   background centroids ``b_j`` of the dataset equals ``(1 - v . b_mean) / 2`` with
   ``b_mean`` the plain (not renormalised) mean of the ``b_j``: O(N), exact.
3. :func:`select_centroids` + :func:`debiased_centroids`: per class, the mean ``V_c``
   of the ``ceil(alpha * n_c)`` centroids farthest from the background.
4. :func:`debias_map`: ``M = relu(max_{c in tags} cos(F, V_c))`` on the feature grid,
   bilinearly upsampled to the image.
5. :func:`binarise_map` (in :mod:`mars_mm.core.refine`, with every other CRF
   refinement): dense CRF on ``[(1 - M)^gamma, M]``, or a threshold;
   ``keep = M_db == 1``.
6. :func:`debias_label`: foreground pixels (1..253) with ``keep == False`` become
   ``BIASED_INDEX`` (254); background (0), 254 and 255 never change; no pixel changes
   class.

The image-level classes ``C_I`` of step 4 come from one of :data:`TAG_SOURCES`; the
classes found in a label map are :func:`classes_in_label` (tool and transform alike).
The files the offline job reads and writes are described in
:mod:`mars_mm.debias.formats`.
"""
import math
import warnings
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from mars_mm.core.kmeans import grouped_spherical_kmeans
from mars_mm.core.refine import Refinement, binarise_map  # noqa: F401  (step 5)
from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Largest value that counts as a foreground class id in a pseudo label.
MAX_CLASS_ID = BIASED_INDEX - 1

#: Where the image-level classes ``C_I`` come from, for the tool and the transform:
#: ``'img_tags'`` (the dataset's tags, the paper's), ``'gt'`` (classes of the GT
#: mask, offline tool only) or ``'pseudo_label'`` (classes of the baseline label).
TAG_SOURCES = ('img_tags', 'gt', 'pseudo_label')
#: v0.1 names still accepted (the tool called ``'img_tags'`` ``'dataset'``).
_TAG_SOURCE_ALIASES = {'dataset': 'img_tags'}


def check_tag_source(name: str, allowed: Sequence[str] = TAG_SOURCES) -> str:
    """The canonical name of a tag source, checked against ``allowed``.

    Raises:
        ValueError: for a name outside ``allowed`` (aliases resolved first).
    """
    if name in _TAG_SOURCE_ALIASES:
        new = _TAG_SOURCE_ALIASES[name]
        warnings.warn(f'tag_source={name!r} is deprecated; use {new!r}',
                      DeprecationWarning, stacklevel=3)
        name = new
    if name not in allowed:
        raise ValueError(f'tag_source must be one of {tuple(allowed)}, got {name!r}')
    return name


def classes_in_label(label: np.ndarray, num_classes: int) -> np.ndarray:
    """The foreground classes present in a label map: its values in ``1..C``.

    The one tag filter of Stage 3 (``tag_source='gt'`` / ``'pseudo_label'``):
    background, 254 (removed), 255 (ignore) and anything ``>= num_classes`` are no
    class of the image.

    Args:
        label: ``(H, W)`` label map.
        num_classes: C + 1 (background included).

    Returns:
        np.ndarray: sorted int64 class ids.
    """
    values = np.unique(label)
    return values[(values > 0) & (values < num_classes)].astype(np.int64)


class ImageCentroids(NamedTuple):
    """The centroids of one image (``T_i`` rows).

    Attributes:
        class_ids: ``(T_i,)`` int64 class of each centroid, sorted, 0 = background.
        vectors: ``(T_i, D)`` float32 unit centroids.
        sizes: ``(T_i,)`` int64 feature-grid pixels assigned to each centroid.
    """
    class_ids: np.ndarray
    vectors: np.ndarray
    sizes: np.ndarray


def resize_label_to_grid(label: np.ndarray, grid_size: Tuple[int, int]) -> np.ndarray:
    """Nearest resize of a label map to the feature grid, sampling pixel centres.

    Cell ``(i, j)`` of an ``(h, w)`` grid takes the label at pixel
    ``(floor((i + 0.5) H / h), floor((j + 0.5) W / w))``; for a stride-8 grid with
    ``h = ceil(H / 8)`` this is (about) the centre pixel of the cell's 8x8 patch.

    Args:
        label: ``(H, W)`` label map.
        grid_size: ``(h, w)``.

    Returns:
        np.ndarray: ``(h, w)`` label map, same dtype.
    """
    height, width = label.shape
    grid_h, grid_w = grid_size
    rows = np.minimum(((np.arange(grid_h) + 0.5) * height / grid_h).astype(np.int64),
                      height - 1)
    cols = np.minimum(((np.arange(grid_w) + 0.5) * width / grid_w).astype(np.int64),
                      width - 1)
    return label[rows[:, None], cols[None, :]]


def normalise_embedding(embedding: ArrayLike,
                        mean: Optional[ArrayLike] = None) -> torch.Tensor:
    """Centre (optionally) and L2-normalise an embedding along its channels.

    Args:
        embedding: ``(D, h, w)`` raw codes (any float dtype).
        mean: ``(D,)`` dataset mean to subtract first, or ``None`` / empty.

    Returns:
        torch.Tensor: ``(D, h, w)`` float32 unit vectors (zero vectors stay zero).
    """
    tensor = torch.as_tensor(embedding).float()
    if tensor.ndim != 3:
        raise ValueError(f'an embedding must be (D, h, w), got {tuple(tensor.shape)}')
    if mean is not None and len(mean):
        mean = torch.as_tensor(mean, device=tensor.device).float()
        if mean.shape != tensor.shape[:1]:
            raise ValueError(f'embedding mean has shape {tuple(mean.shape)}, the '
                             f'embedding {tuple(tensor.shape)}')
        tensor = tensor - mean[:, None, None]
    return F.normalize(tensor, dim=0, eps=1e-12)


def image_centroids(embedding: torch.Tensor, label_grid: np.ndarray,
                    k_fg: int = 2, k_bg: int = 2, num_iters: int = 30,
                    seed: int = 0,
                    exclude: Sequence[int] = (IGNORE_INDEX, BIASED_INDEX)
                    ) -> ImageCentroids:
    """Step 1: k-means centroids of every class present in one image.

    All classes of the image are clustered in one batched call.

    Args:
        embedding: ``(D, h, w)`` unit embedding (:func:`normalise_embedding`).
        label_grid: ``(h, w)`` label on the feature grid
            (:func:`resize_label_to_grid`).
        k_fg: clusters per foreground class.
        k_bg: clusters for the background (class 0).
        num_iters: Lloyd iterations at most.
        seed: k-means++ seed (fixed, so every run gives the same centroids).
        exclude: label values that are not a class.

    Returns:
        ImageCentroids: a class with fewer distinct pixels than K gives fewer
        centroids; an image without any valid pixel gives zero rows.
    """
    dim = embedding.shape[0]
    if tuple(label_grid.shape) != tuple(embedding.shape[1:]):
        raise ValueError(f'label grid {label_grid.shape} and embedding grid '
                         f'{tuple(embedding.shape[1:])} differ')
    flat_label = torch.as_tensor(np.asarray(label_grid, dtype=np.int64).ravel())
    classes = [int(c) for c in torch.unique(flat_label).tolist()
               if int(c) not in set(exclude)]
    if not classes:
        return ImageCentroids(np.zeros(0, np.int64), np.zeros((0, dim), np.float32),
                              np.zeros(0, np.int64))
    points = embedding.reshape(dim, -1).t()
    class_tensor = torch.as_tensor(classes)
    member = flat_label[:, None] == class_tensor[None, :]
    keep = member.any(dim=1)
    groups = member[keep].to(torch.int64).argmax(dim=1)
    num_clusters = [k_bg if c == 0 else k_fg for c in classes]
    result = grouped_spherical_kmeans(points[keep.to(points.device)],
                                      groups.to(points.device), num_clusters,
                                      len(classes), num_iters, seed)
    valid = result.valid.cpu().numpy()
    class_ids = np.repeat(np.asarray(classes, np.int64), valid.sum(axis=1))
    vectors = result.centroids.cpu().numpy()[valid].astype(np.float32)
    sizes = result.sizes.cpu().numpy()[valid].astype(np.int64)
    return ImageCentroids(class_ids, vectors, sizes)


def background_mean(background_vectors: np.ndarray) -> np.ndarray:
    """``b_mean``: plain mean of all background centroids (NOT renormalised).

    Args:
        background_vectors: ``(B, D)`` unit background centroids of the dataset.

    Returns:
        np.ndarray: ``(D,)`` float64; its norm is below one unless all coincide.
    """
    background_vectors = np.asarray(background_vectors, dtype=np.float64)
    if not len(background_vectors):
        raise ValueError('no background centroid in the dataset: the distance to '
                         'background is undefined (do the labels contain class 0?)')
    return background_vectors.mean(axis=0)


def distance_to_background(vectors: np.ndarray, b_mean: np.ndarray) -> np.ndarray:
    """Step 2: mean distance of each centroid to all background centroids.

    ``mean_j (1 - v.b_j) / 2 = (1 - v . mean_j b_j) / 2`` for unit ``v`` and ``b_j``.

    Args:
        vectors: ``(T, D)`` unit centroids.
        b_mean: ``(D,)`` from :func:`background_mean`.

    Returns:
        np.ndarray: ``(T,)`` float64 distances in [0, 1].
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    return (1.0 - vectors @ np.asarray(b_mean, dtype=np.float64)) / 2.0


def select_centroids(class_ids: np.ndarray, distances: np.ndarray, alpha: float,
                     num_classes: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3 (which rows): per foreground class, the ``ceil(alpha * n_c)`` farthest.

    Ties in distance go to the earlier row (a stable sort), so the choice is
    reproducible.

    Args:
        class_ids: ``(T,)`` class of each centroid (0 = background, never selected).
        distances: ``(T,)`` distance to background.
        alpha: share of each class's centroids to keep, in (0, 1].
        num_classes: C + 1 (background included).

    Returns:
        tuple: ``selected (T,) bool``, ``num_selected (C + 1,) int64`` and ``cut
        (C + 1,) float64``, the smallest selected distance (NaN without centroids).
    """
    if not 0 < alpha <= 1:
        raise ValueError(f'alpha must lie in (0, 1], got {alpha}')
    class_ids = np.asarray(class_ids, dtype=np.int64)
    distances = np.asarray(distances, dtype=np.float64)
    if class_ids.size and class_ids.max() >= num_classes:
        raise ValueError(f'class id {class_ids.max()} >= num_classes {num_classes}')
    selected = np.zeros(len(class_ids), dtype=bool)
    num_selected = np.zeros(num_classes, dtype=np.int64)
    cut = np.full(num_classes, np.nan)
    order = np.argsort(-distances, kind='stable')
    ordered_classes = class_ids[order]
    for class_id in np.unique(class_ids):
        if class_id == 0:
            continue
        rows = order[ordered_classes == class_id]
        count = math.ceil(alpha * len(rows))
        selected[rows[:count]] = True
        num_selected[class_id] = count
        cut[class_id] = distances[rows[count - 1]]
    return selected, num_selected, cut


def debiased_centroids(vectors: np.ndarray, class_ids: np.ndarray,
                       selected: np.ndarray,
                       num_classes: int) -> Tuple[np.ndarray, np.ndarray]:
    """Step 3 (the vectors): ``V_c`` = mean of the selected centroids of class c.

    Args:
        vectors: ``(T, D)`` centroids.
        class_ids: ``(T,)``.
        selected: ``(T,)`` bool from :func:`select_centroids`.
        num_classes: C + 1.

    Returns:
        tuple: ``(C + 1, D)`` float32 ``V`` (unused rows zero), ``(C + 1,)`` valid.
    """
    sums = np.zeros((num_classes, np.asarray(vectors).shape[1]), dtype=np.float64)
    counts = np.zeros(num_classes, dtype=np.int64)
    accumulate_selected(sums, counts, vectors, class_ids, selected)
    return finish_debiased(sums, counts)


def accumulate_selected(sums: np.ndarray, counts: np.ndarray, vectors: np.ndarray,
                        class_ids: np.ndarray, selected: np.ndarray) -> None:
    """Add a chunk of rows to running per-class sums (streaming step 3), in place."""
    rows = np.asarray(selected, dtype=bool)
    np.add.at(sums, np.asarray(class_ids)[rows],
              np.asarray(vectors, dtype=np.float64)[rows])
    np.add.at(counts, np.asarray(class_ids)[rows], 1)


def finish_debiased(sums: np.ndarray,
                    counts: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Means from running sums: ``((C + 1, D) float32 V, (C + 1,) bool valid)``."""
    valid = counts > 0
    means = np.zeros_like(sums, dtype=np.float32)
    means[valid] = (sums[valid] / counts[valid, None]).astype(np.float32)
    return means, valid


def usable_tags(tags: Sequence[int], debiased_valid: np.ndarray) -> np.ndarray:
    """The tag classes that have a debiased centroid (others cannot vote)."""
    tags = np.asarray(tags, dtype=np.int64).ravel()
    tags = tags[(tags > 0) & (tags < len(debiased_valid))]
    return np.unique(tags[np.asarray(debiased_valid)[tags]])


def debias_map(embedding: torch.Tensor, debiased: ArrayLike, tags: Sequence[int],
               image_size: Tuple[int, int]) -> np.ndarray:
    """Step 4: ``relu(max_{c in tags} cos(F, V_c))``, upsampled to the image.

    Args:
        embedding: ``(D, h, w)`` unit embedding.
        debiased: ``(C + 1, D)`` debiased centroids ``V``.
        tags: classes whose ``V_c`` vote (non-empty; see :func:`usable_tags`).
        image_size: ``(H, W)``.

    Returns:
        np.ndarray: ``(H, W)`` float32 in [0, 1] (bilinear, pixel-centre aligned).
    """
    tags = np.asarray(tags, dtype=np.int64).ravel()
    if not tags.size:
        raise ValueError('debias_map needs at least one class with a debiased '
                         'centroid')
    centroids = torch.as_tensor(np.asarray(debiased)[tags],
                                device=embedding.device).float()
    centroids = F.normalize(centroids, dim=1, eps=1e-12)
    similarity = torch.einsum('kd,dhw->khw', centroids, embedding)
    grid_map = similarity.max(dim=0).values.clamp_min(0)
    full = F.interpolate(grid_map[None, None], size=tuple(image_size),
                         mode='bilinear', align_corners=False)[0, 0]
    return full.clamp(0, 1).cpu().numpy().astype(np.float32)


def debias_label(label: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Step 6: mark foreground pixels outside ``keep`` as ``BIASED_INDEX``.

    Args:
        label: ``(H, W)`` baseline pseudo label (0..C, 255, maybe 254).
        keep: ``(H, W)`` bool ``M_db``.

    Returns:
        np.ndarray: ``(H, W)`` uint8; only pixels with ``1 <= Y_b <= 253`` and
        ``keep == False`` change, and they become 254.
    """
    if label.shape != keep.shape:
        raise ValueError(f'label {label.shape} and mask {keep.shape} differ')
    label = np.asarray(label)
    foreground = (label > 0) & (label <= MAX_CLASS_ID)
    out = label.astype(np.uint8, copy=True)
    out[foreground & ~keep] = BIASED_INDEX
    return out


class DebiasResult(NamedTuple):
    """Output of :func:`debias_image`.

    Attributes:
        label: ``(H, W)`` uint8 debiased label.
        debias_map: ``(H, W)`` float32 map, or ``None`` when it was not needed (no
            foreground) or not computable (no tag with a debiased centroid).
        keep: ``(H, W)`` bool ``M_db`` (all True when no map was computed).
    """
    label: np.ndarray
    debias_map: Optional[np.ndarray]
    keep: np.ndarray


def debias_image(label: np.ndarray, embedding: ArrayLike, tags: Sequence[int],
                 debiased: np.ndarray, debiased_valid: np.ndarray,
                 image: Optional[np.ndarray] = None,
                 embedding_mean: Optional[np.ndarray] = None,
                 refinement: Refinement = Refinement(),
                 always_map: bool = False) -> DebiasResult:
    """Steps 4-6 for one image: the per-image part shared by the tool and transform.

    Args:
        label: ``(H, W)`` baseline pseudo label.
        embedding: ``(D, h, w)`` raw embedding.
        tags: image-level classes ``C_I``.
        debiased: ``(C + 1, D)`` ``V``; ``debiased_valid``: ``(C + 1,)``.
        image: ``(H, W, 3)`` uint8 RGB (CRF only).
        embedding_mean: ``(D,)`` dataset mean if centring was used, else ``None``.
        refinement: binarisation.
        always_map: compute the map even for an image without foreground (reports).

    Returns:
        DebiasResult: the label is unchanged when it holds no foreground or when no
        tag of the image has a debiased centroid.
    """
    label = np.asarray(label)
    keep = np.ones(label.shape, dtype=bool)
    foreground = (label > 0) & (label <= MAX_CLASS_ID)
    has_foreground = bool(foreground.any())
    tags = usable_tags(tags, debiased_valid)
    if not tags.size or not (has_foreground or always_map):
        return DebiasResult(label.astype(np.uint8, copy=True), None, keep)
    unit = normalise_embedding(embedding, embedding_mean)
    if unit.shape[0] != np.asarray(debiased).shape[1]:
        raise ValueError(f'embedding has {unit.shape[0]} channels, the centroids '
                         f'{np.asarray(debiased).shape[1]}')
    score = debias_map(unit, debiased, tags, label.shape)
    if has_foreground:
        keep = binarise_map(score, image, refinement, foreground)
    return DebiasResult(debias_label(label, keep), score, keep)
