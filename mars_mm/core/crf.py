"""The one dense-CRF wrapper used by every stage (pseudo labels, debias maps, TTA).

Parameters follow the convention of the WSSS literature (AffinityNet/IRN; Krähenbühl
and Koltun, NeurIPS 2011): 10 mean-field iterations, a Gaussian kernel (sxy 1,
compat 3) and a bilateral kernel (sxy 67, srgb 3, compat 4) on the RGB image.
``pydensecrf`` (package ``pydensecrf2``) is imported lazily so that the rest of
mars_mm works without it.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class CRFParams:
    """Dense-CRF hyper-parameters (the defaults are the literature's)."""
    num_iters: int = 10
    gaussian_sxy: float = 1.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 67.0
    bilateral_srgb: float = 3.0
    bilateral_compat: float = 4.0


def _import_densecrf():
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            'dense CRF needs the `pydensecrf` module: pip install pydensecrf2 '
            '(or `pip install -e .[optional]`)') from err
    return dcrf, unary_from_softmax


def dense_crf(image: np.ndarray, probs: np.ndarray,
              params: CRFParams = CRFParams(),
              eps: float = 1e-8) -> np.ndarray:
    """Refine per-pixel class probabilities with a fully connected CRF.

    Args:
        image: ``(H, W, 3)`` uint8 RGB image.
        probs: ``(K, H, W)`` non-negative scores of the K candidate labels; they are
            renormalised to sum to one per pixel.
        params: CRF hyper-parameters.
        eps: floor added before the log of the unary.

    Returns:
        np.ndarray: ``(K, H, W)`` float32 marginals after mean-field inference.
    """
    dcrf, unary_from_softmax = _import_densecrf()
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'image must be (H, W, 3), got {image.shape}')
    num_labels, height, width = probs.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f'image {image.shape[:2]} and probabilities '
                         f'{(height, width)} differ in size')
    probs = np.asarray(probs, dtype=np.float32)
    probs = probs / np.maximum(probs.sum(axis=0, keepdims=True), eps)
    crf = dcrf.DenseCRF2D(width, height, num_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(probs, clip=eps)))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image.astype(np.uint8)),
                             compat=params.bilateral_compat)
    marginals = np.array(crf.inference(params.num_iters), dtype=np.float32)
    return marginals.reshape(num_labels, height, width)


def crf_labels(image: np.ndarray, probs: np.ndarray,
               label_ids: Optional[Sequence[int]] = None,
               params: CRFParams = CRFParams()) -> np.ndarray:
    """CRF-refined argmax, mapped back to label ids.

    Only the K candidate labels given are passed to the CRF (cost grows with K; the
    stages pass background + the image's classes).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        probs: ``(K, H, W)`` scores of the candidates.
        label_ids: the label id of each of the K channels; default ``0..K-1``.
        params: CRF hyper-parameters.

    Returns:
        np.ndarray: ``(H, W)`` int64 label ids.
    """
    refined = dense_crf(image, probs, params)
    index = refined.argmax(axis=0)
    if label_ids is None:
        return index.astype(np.int64)
    return np.asarray(label_ids, dtype=np.int64)[index]
