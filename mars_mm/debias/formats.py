"""The files of Stage 3: readers and writers, checked, naming the file on errors.

Inputs (one per image, ``<stem>`` shared):

* baseline pseudo label ``<pseudo_label_dir>/<stem>.png``: ``(H, W)`` uint8, values
  ``0..C``, 254 (removed) or 255 (ignore) (:func:`load_pseudo_label`);
* embedding ``<embedding_dir>/<stem>.npy``: float ``(D, ceil(H / s), ceil(W / s))``,
  stride ``s`` (8 by default) (:func:`load_embedding`);
* the RGB image, for the CRF and the report (``load_rgb``: the project's one image
  reader, :func:`mars_mm.utils.io.read_rgb`, under its Stage 3 name).

Outputs in the work dir:

* ``centroids/<stem>.npz``: pass 1's centroids of one image, ``class_ids (T_i,)``,
  ``vectors (T_i, D)`` float32, ``sizes (T_i,)`` and ``inputs (4,)`` int64, the
  size and modification time (ns) of the pseudo label and the embedding it was
  made from (:func:`save_image_centroids`): a rerun recomputes the file when an
  input changed since;
* ``centroid_vectors.npy``: all centroid vectors of the dataset, ``(T, D)`` float32
  in pass order, streamed in and out in chunks (:func:`npy_from_raw`,
  :func:`read_npy_chunks`), so memory stays flat whatever N;
* ``centroids.npz``: the merge's summary, one row per centroid (``T`` rows):

==================  ==========================  =====================================
key                 shape / dtype               content
==================  ==========================  =====================================
stems               ``(N,)`` str                image stems, in pass order
image_index         ``(T,)`` int64              row into ``stems``
class_ids           ``(T,)`` int64              class of the centroid (0 background)
sizes               ``(T,)`` int64              feature-grid pixels in the cluster
distance            ``(T,)`` float32            distance to background (all rows)
selected            ``(T,)`` bool               used for the class's ``V_c``
debiased            ``(C + 1, D)`` float32      ``V_c`` (row 0 and unused rows zero)
debiased_valid      ``(C + 1,)`` bool           class has a ``V_c``
num_selected        ``(C + 1,)`` int64          ``ceil(alpha * n_c)``
cut                 ``(C + 1,)`` float32        smallest selected distance (NaN if none)
background_mean     ``(D,)`` float32            ``b_mean``
embedding_mean      ``(D,)`` float32            dataset mean (centring), or ``(0,)``
alpha, k_fg, k_bg   scalars                     the parameters used
==================  ==========================  =====================================

* ``labels/<stem>.png``: the debiased label, 254 where biased foreground was removed.
"""
import os
import os.path as osp
import zipfile
from typing import Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from mars_mm.core.debias import ImageCentroids
from mars_mm.debias.quantised import QUANTISED_SUFFIX, load_quantised_embedding
from mars_mm.utils.io import (
    BIASED_INDEX,
    IGNORE_INDEX,
    atomic_write,
    load_label_png,
    save_with,
)
from mars_mm.utils.io import read_rgb as load_rgb  # noqa: F401  (Stage 3 name)


# ----------------------------------------------------------------------- inputs
def load_pseudo_label(path: str, num_classes: int) -> np.ndarray:
    """A baseline pseudo label, checked: values 0..C, 254 or 255.

    Returns:
        np.ndarray: ``(H, W)`` uint8.

    Raises:
        ValueError: naming ``path`` for values outside that set.
    """
    label = load_label_png(path)
    bad = (label >= num_classes) & (label != IGNORE_INDEX) & (label != BIASED_INDEX)
    if bad.any():
        raise ValueError(f'{path}: label value {int(label[bad].max())} outside '
                         f'0..{num_classes - 1} (and not 254/255)')
    return label


def load_embedding(path: str, image_size: Optional[Sequence[int]] = None,
                   stride: Optional[int] = 8) -> np.ndarray:
    """A ``(D, h, w)`` embedding, checked against the image size.

    Args:
        path: the ``.npy`` file, or a compact ``.q8.npz`` one
            (:mod:`mars_mm.debias.quantised`; ``debias.embedding_suffix``).
        image_size: ``(H, W)`` of the image, or ``None`` to skip the grid check.
        stride: expected stride (``h = ceil(H / stride)``); ``None`` skips the check.

    Returns:
        np.ndarray: ``(D, h, w)`` in the file's float dtype.

    Raises:
        FileNotFoundError / ValueError: naming ``path``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'embedding file not found: {path}')
    try:
        if path.endswith(QUANTISED_SUFFIX):
            # 4/8-bit codes (mars_mm.debias.quantised), decoded to float32
            array = load_quantised_embedding(path)
        else:
            array = np.load(path, allow_pickle=False)
    except NPZ_ERRORS as err:
        raise ValueError(f'{path}: cannot read embedding ({err})') from err
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f'{path}: an embedding must be a float (D, h, w) array, got '
                         f'{array.dtype} {array.shape}')
    if image_size is not None and stride:
        expected = tuple(-(-int(s) // stride) for s in image_size)
        if array.shape[1:] != expected:
            raise ValueError(f'{path}: grid {array.shape[1:]} does not match an '
                             f'image of {tuple(image_size)} at stride {stride} '
                             f'(expected {expected})')
    if not np.isfinite(array).all():
        raise ValueError(f'{path}: embedding holds NaN or inf')
    return array


# ------------------------------------------------------------ per-image centroids
#: What can go wrong reading an ``.npz`` (a truncated file is no zip archive).
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError,
              zipfile.BadZipFile)


def save_image_centroids(path: str, centroids: ImageCentroids,
                         inputs: Optional[Sequence[int]] = None) -> None:
    """Write one image's centroids (atomically: a killed run leaves no half file).

    Args:
        inputs: fingerprint of the files they were made from (see the module
            docstring); stored as ``inputs``.
    """
    extra = {} if inputs is None else dict(inputs=np.asarray(inputs, np.int64))
    save_with(path, lambda tmp: np.savez(tmp, class_ids=centroids.class_ids,
                                         vectors=centroids.vectors,
                                         sizes=centroids.sizes, **extra))


def load_image_centroids(path: str) -> ImageCentroids:
    """Read a file of :func:`save_image_centroids` (arrays as stored).

    Raises:
        ValueError: naming ``path`` when it is truncated or not such a file.
    """
    try:
        with open(path, 'rb') as handle, np.load(handle) as data:
            return ImageCentroids(data['class_ids'], data['vectors'], data['sizes'])
    except NPZ_ERRORS as err:
        raise ValueError(f'{path}: cannot read a centroid file ({type(err).__name__}:'
                         f' {err})') from err


def image_centroid_inputs(path: str) -> Optional[np.ndarray]:
    """The ``inputs`` fingerprint of a per-image centroid file (None if absent).

    Raises:
        ValueError: naming ``path`` when it cannot be read.
    """
    try:
        with open(path, 'rb') as handle, np.load(handle) as data:
            return data['inputs'].copy() if 'inputs' in data.files else None
    except NPZ_ERRORS as err:
        raise ValueError(f'{path}: cannot read a centroid file ({type(err).__name__}:'
                         f' {err})') from err


# ------------------------------------------------------------- centroid vectors
def npy_from_raw(raw_path: str, npy_path: str, shape: Tuple[int, int],
                 dtype: np.dtype = np.float32, block_bytes: int = 1 << 24) -> None:
    """Wrap a file of raw C-ordered rows as a ``.npy``, streamed; removes the raw file.

    The rows are appended to the raw file while their number is still unknown; the
    ``.npy`` header, which needs the shape, is written here, then the bytes copied.
    """
    with atomic_write(npy_path) as tmp_npy:
        with open(tmp_npy, 'wb') as out, open(raw_path, 'rb') as raw:
            np.lib.format.write_array_header_1_0(
                out, dict(descr=np.lib.format.dtype_to_descr(np.dtype(dtype)),
                          fortran_order=False, shape=tuple(shape)))
            while True:
                block = raw.read(block_bytes)
                if not block:
                    break
                out.write(block)
    os.remove(raw_path)


def read_npy_chunks(path: str, chunk_rows: int) -> Iterator[np.ndarray]:
    """Rows of a 2-D ``.npy`` file, ``chunk_rows`` at a time, without mapping it.

    Yields:
        np.ndarray: ``(r, D)`` with ``r <= chunk_rows``, in file order.
    """
    with open(path, 'rb') as file:
        version = np.lib.format.read_magic(file)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(file)
        if fortran or len(shape) != 2:
            raise ValueError(f'{path}: expected a C-ordered 2-D array')
        remaining = shape[0]
        while remaining:
            rows = min(chunk_rows, remaining)
            chunk = np.fromfile(file, dtype=dtype, count=rows * shape[1])
            if chunk.size != rows * shape[1]:
                raise ValueError(f'{path}: truncated')
            yield chunk.reshape(rows, shape[1])
            remaining -= rows


# ------------------------------------------------------------------ centroid file
def save_centroid_file(path: str, arrays: Dict[str, np.ndarray]) -> None:
    """Write ``centroids.npz`` (keys in the table above), atomically."""
    save_with(path, lambda tmp: np.savez(tmp, **arrays))


def load_centroid_file(path: str) -> Dict[str, Optional[np.ndarray]]:
    """The per-image essentials of ``centroids.npz``.

    Returns:
        dict: ``debiased`` ``(C + 1, D)``, ``debiased_valid`` ``(C + 1,)`` and
        ``embedding_mean`` ``(D,)`` (``None`` without centring).
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'centroid file not found: {path}')
    keys = ('debiased', 'debiased_valid', 'embedding_mean')
    try:
        with open(path, 'rb') as handle, np.load(handle) as data:
            arrays = {key: data[key] for key in keys if key in data.files}
    except NPZ_ERRORS as err:
        raise ValueError(f'{path}: cannot read the centroid file '
                         f'({type(err).__name__}: {err})') from err
    missing = set(keys) - set(arrays)
    if missing:
        raise ValueError(f'{path}: not a MARS centroid file (missing '
                         f'{sorted(missing)})')
    mean = arrays['embedding_mean']
    return dict(debiased=arrays['debiased'], debiased_valid=arrays['debiased_valid'],
                embedding_mean=mean if mean.size else None)


def load_centroid_summary(path: str) -> Dict[str, np.ndarray]:
    """Every array of ``centroids.npz`` but ``stems`` (the report's statistics)."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files if key != 'stems'}
