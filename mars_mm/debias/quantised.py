"""Compact USS embeddings for Stage 3: 8-bit codes, optionally on a coarser grid.

The lossless embedding file (float16 ``(D, ceil(H/8), ceil(W/8))``, D = 70) is about
0.41 MB per VOC image and 0.67 MB per COCO image: 4.4 GB for VOC train_aug and
51 GB for COCO train. Stage 3 only compares directions (k-means on unit vectors,
cosine similarity to centroids), so it tolerates a small uniform error per channel:

* ``uint8`` codes with a per-image, per-channel offset and step (error at most half
  a step, ``(max - min) / 510`` of that channel) halve the bytes, and compress;
* ``bits=4`` stores 16 levels, two codes per byte: half the bytes of ``uint8``
  again, at a step 17 times larger;
* ``pool=2`` also averages 2 x 2 cells (stride 16); :func:`load_quantised_embedding`
  resizes back to the stored stride-8 grid bilinearly, so readers see the shape they
  expect. A quarter of the bytes again, at a larger label change.

``benchmarks/disk.py`` measures the bytes and the change of the debiased labels on
planted-bias datasets. The lossless ``.npy`` stays the default format.
"""
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from mars_mm.utils.io import save_with

#: File suffix of a quantised embedding (an ``.npz`` archive).
QUANTISED_SUFFIX = '.q8.npz'


def quantise_embedding(embedding: np.ndarray, pool: int = 1, bits: int = 8) -> dict:
    """Encode a ``(D, h, w)`` embedding as 8- or 4-bit codes.

    Args:
        embedding: float ``(D, h, w)``.
        pool: average ``pool x pool`` cells first (1: keep the grid).
        bits: 8 (one code per byte) or 4 (two codes per byte).

    Returns:
        dict: ``codes`` uint8 ``(D, ceil(h/pool), ceil(w/pool))`` (with
        ``bits=4``: the flattened codes packed two per byte), ``offset`` and
        ``step`` float32 ``(D,)`` (value = offset + code * step), ``grid`` int64
        ``(2,)``, the original ``(h, w)``, and ``shape`` int64 ``(3,)``, the
        code array's shape.
    """
    if bits not in (4, 8):
        raise ValueError(f'bits must be 4 or 8, got {bits}')
    embedding = np.asarray(embedding, dtype=np.float32)
    if embedding.ndim != 3:
        raise ValueError(f'embedding must be (D, h, w), got {embedding.shape}')
    grid = embedding.shape[1:]
    if pool > 1:
        # ceil_mode keeps the last partial cell; count_include_pad=False averages
        # only real cells there
        embedding = F.avg_pool2d(torch.from_numpy(embedding)[None], pool,
                                 ceil_mode=True, count_include_pad=False)[0].numpy()
    levels = 2 ** bits - 1
    flat = embedding.reshape(len(embedding), -1)
    offset = flat.min(axis=1)
    step = (flat.max(axis=1) - offset) / levels
    step = np.where(step > 0, step, 1.0).astype(np.float32)
    codes = np.rint((embedding - offset[:, None, None]) / step[:, None, None])
    codes = np.clip(codes, 0, levels).astype(np.uint8)
    shape = np.asarray(codes.shape, dtype=np.int64)
    if bits == 4:
        codes = codes.ravel()
        if codes.size % 2:
            codes = np.append(codes, np.uint8(0))
        codes = (codes[0::2] << 4) | codes[1::2]
    return dict(codes=codes, offset=offset.astype(np.float32), step=step,
                grid=np.asarray(grid, dtype=np.int64), shape=shape)


def _unpack(codes: np.ndarray, shape: Tuple[int, ...]) -> np.ndarray:
    """The ``(D, h, w)`` codes of a file, unpacking 4-bit pairs if needed."""
    if codes.ndim == 3:
        return codes
    pairs = np.stack([codes >> 4, codes & 0x0F], axis=1).ravel()
    return pairs[:int(np.prod(shape))].reshape(shape)


def dequantise_embedding(codes: np.ndarray, offset: np.ndarray, step: np.ndarray,
                         grid: Tuple[int, int]) -> np.ndarray:
    """Decode to float32 ``(D, *grid)`` (bilinear back to ``grid`` if pooled)."""
    values = offset[:, None, None] + codes.astype(np.float32) * step[:, None, None]
    if tuple(values.shape[1:]) != tuple(grid):
        values = F.interpolate(torch.from_numpy(values)[None], size=tuple(grid),
                               mode='bilinear', align_corners=False)[0].numpy()
    return values.astype(np.float32)


def save_quantised_embedding(path: str, embedding: np.ndarray, pool: int = 1,
                             bits: int = 8) -> None:
    """Atomically write :func:`quantise_embedding`'s arrays, compressed."""
    arrays = quantise_embedding(embedding, pool, bits)
    save_with(path, lambda tmp: np.savez_compressed(tmp, **arrays))


def load_quantised_embedding(path: str) -> np.ndarray:
    """Read a quantised embedding as float32 ``(D, h, w)`` on its stride-8 grid."""
    with open(path, 'rb') as handle, np.load(handle) as data:
        codes = _unpack(data['codes'], tuple(int(v) for v in data['shape']))
        return dequantise_embedding(codes, data['offset'], data['step'],
                                    tuple(int(v) for v in data['grid']))
