"""Dense-CRF refinement of a full class-probability map (teacher targets, TTA).

Both Stage 4's teacher (optional) and test-time post-processing refine a softmax
over all K classes. The CRF's cost grows with the number of labels, so only a few
candidate classes are passed to the shared wrapper :func:`mars_mm.core.crf.dense_crf`
and the other classes get probability 0 afterwards.
"""
from typing import Optional, Sequence

import numpy as np

from mars_mm.core.crf import CRFParams, dense_crf


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
