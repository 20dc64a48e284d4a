"""Dense-CRF refinements: every use of the one CRF wrapper :mod:`mars_mm.core.crf`.

Two kinds, both on the RGB image:

* **binary** (Stage 3, step 5): the debias map ``M`` becomes ``M_db`` by a CRF on the
  two channels ``[(1 - M)^gamma, M]`` (or a plain threshold), chosen by
  :class:`Refinement` and applied by :func:`binarise_map`;
* **multi-class** (Stage 4's teacher, test-time post-processing): a softmax over all
  K classes is refined by :func:`crf_refine_probs`. The CRF's cost grows with the
  number of labels, so only a few candidate classes (:func:`present_classes`) are
  passed to the wrapper and the other classes get probability 0 afterwards.
"""
from dataclasses import dataclass, field, replace
from typing import Optional, Sequence, Tuple

import numpy as np

from mars_mm.core.crf import CRFParams, dense_crf


# ------------------------------------------------------------- binary (debias map)
@dataclass(frozen=True)
class Refinement:
    """How the debias map becomes binary (Stage 3, step 5).

    Attributes:
        method: ``'crf'`` (dense CRF on ``[(1 - M)^gamma, M]``, the paper's) or
            ``'threshold'`` (``keep = M > threshold``, cheap).
        gamma: exponent on the background channel for the CRF **[decision]**.
        threshold: cut-off of the threshold method **[decision]**.
        crf: dense-CRF parameters.
        crop_margin: if set, the CRF runs only on the bounding box of the label's
            foreground grown by this many pixels (only foreground pixels can change;
            pixels outside the box fall back to the threshold). ``None``: whole
            image, the paper's.
        scale: the CRF runs on the image resized by this factor (spatial kernel
            widths scaled alike) and its marginals are resized back; 1.0 is exact.
    """
    method: str = 'crf'
    gamma: float = 1.0
    threshold: float = 0.5
    crf: CRFParams = field(default_factory=CRFParams)
    crop_margin: Optional[int] = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in ('crf', 'threshold'):
            raise ValueError(f"refinement method must be 'crf' or 'threshold', "
                             f'got {self.method!r}')
        if not 0 < self.scale <= 1:
            raise ValueError(f'refinement scale must lie in (0, 1], got {self.scale}')

    @classmethod
    def from_config(cls, cfg: Optional[dict]) -> 'Refinement':
        """Build from a config dict such as ``dict(type='crf', gamma=1.0, crf=...)``."""
        cfg = dict(cfg or {})
        method = cfg.pop('type', cfg.pop('method', 'crf'))
        crf = cfg.pop('crf', None)
        crf = crf if isinstance(crf, CRFParams) else CRFParams(**(crf or {}))
        return cls(method=method, crf=crf, **cfg)


def _foreground_box(foreground: np.ndarray, margin: int) -> Tuple[slice, slice]:
    rows = np.flatnonzero(foreground.any(axis=1))
    cols = np.flatnonzero(foreground.any(axis=0))
    height, width = foreground.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, height)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, width)))


def _crf_keep(debias: np.ndarray, image: np.ndarray,
              refinement: Refinement) -> np.ndarray:
    """Argmax of the CRF on ``[(1 - M)^gamma, M]``, optionally at a smaller scale."""
    import cv2
    params = refinement.crf
    height, width = debias.shape
    if refinement.scale != 1.0:
        size = (max(1, round(width * refinement.scale)),
                max(1, round(height * refinement.scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        debias = cv2.resize(debias, size, interpolation=cv2.INTER_LINEAR)
        params = replace(params, gaussian_sxy=params.gaussian_sxy * refinement.scale,
                         bilateral_sxy=params.bilateral_sxy * refinement.scale)
    probs = np.stack([(1.0 - debias) ** refinement.gamma, debias]).astype(np.float32)
    marginals = dense_crf(np.ascontiguousarray(image), probs, params)
    if refinement.scale != 1.0:
        foreground = cv2.resize(marginals[1] - marginals[0], (width, height),
                                interpolation=cv2.INTER_LINEAR)
        return foreground > 0
    return marginals.argmax(axis=0) == 1


def binarise_map(debias: np.ndarray, image: Optional[np.ndarray] = None,
                 refinement: Refinement = Refinement(),
                 foreground: Optional[np.ndarray] = None) -> np.ndarray:
    """Stage 3, step 5: ``M_db``, True where the pixel is kept as its class.

    Args:
        debias: ``(H, W)`` map in [0, 1].
        image: ``(H, W, 3)`` uint8 RGB (needed by the CRF).
        refinement: method and parameters.
        foreground: ``(H, W)`` bool, the pixels that may change (for
            ``refinement.crop_margin``).

    Returns:
        np.ndarray: ``(H, W)`` bool. The CRF's argmax breaks ties towards removal,
        like ``M > threshold`` does.
    """
    if refinement.method == 'threshold':
        return debias > refinement.threshold
    if image is None:
        raise ValueError('CRF refinement needs the RGB image')
    if image.shape[:2] != debias.shape:
        raise ValueError(f'image {image.shape[:2]} and debias map {debias.shape} '
                         'differ in size')
    if refinement.crop_margin is None or foreground is None:
        return _crf_keep(debias, image, refinement)
    keep = debias > refinement.threshold
    if foreground.any():
        box = _foreground_box(foreground, refinement.crop_margin)
        keep[box] = _crf_keep(debias[box], image[box], refinement)
    return keep


# ------------------------------------------------- multi-class (teacher, TTA)
def present_classes(probs: np.ndarray, min_prob: float = 0.0) -> np.ndarray:
    """Classes that win the argmax somewhere or reach ``min_prob`` somewhere.

    Args:
        probs: ``(K, H, W)`` class probabilities.
        min_prob: also keep a class whose maximum probability is at least this
            (``<= 0`` keeps only the argmax classes).

    Returns:
        np.ndarray: sorted int64 class ids, background (0) always included.
    """
    classes = set(np.unique(probs.argmax(axis=0)).tolist()) | {0}
    if min_prob > 0:
        classes |= set(np.flatnonzero(probs.reshape(len(probs), -1).max(axis=1)
                                      >= min_prob).tolist())
    return np.array(sorted(classes), dtype=np.int64)


def crf_refine_probs(image: np.ndarray, probs: np.ndarray,
                     candidates: Optional[Sequence[int]] = None,
                     params: CRFParams = CRFParams()) -> np.ndarray:
    """Refine ``probs`` with a dense CRF over the candidate classes only.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        probs: ``(K, H, W)`` float class probabilities.
        candidates: class ids passed to the CRF (default: :func:`present_classes`).
        params: CRF hyper-parameters.

    Returns:
        np.ndarray: ``(K, H, W)`` float32; the CRF marginals at the candidate
        classes, 0 elsewhere.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if candidates is None:
        candidates = present_classes(probs)
    candidates = np.asarray(candidates, dtype=np.int64)
    refined = np.zeros_like(probs)
    if len(candidates) == 1:
        refined[candidates[0]] = 1.0
        return refined
    refined[candidates] = dense_crf(image, probs[candidates], params)
    return refined
