"""Training items for STEGO: an image, one of its nearest neighbours, another image.

The neighbours come from the kNN file written by ``tools/uss/precompute_knn.py``
(``docs/en/data_formats.md``: ``indices`` ``(N, k)`` into the split's image list and
``stems`` ``(N,)``); rows are matched to the wrapped dataset by image stem, so a
dataset that skips some images (e.g. images without tags) still pairs correctly.
"""
import copy
import os.path as osp
import warnings
from typing import List, Sequence, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mars_mm.registry import DATASETS
from mars_mm.utils.io import atomic_write, stem_of

#: metainfo key telling the model which role a sample plays in its group
USS_ROLE_KEY = 'uss_role'


def image_stems(dataset: BaseDataset) -> List[str]:
    """The image stem (file name without extension) of every item of ``dataset``."""
    return [stem_of(dataset.get_data_info(i)['img_path'])
            for i in range(len(dataset))]


def write_knn_file(path: str, indices: np.ndarray, stems: Sequence[str]) -> None:
    """Atomically write ``indices`` ``(N, k)`` int64 and ``stems`` ``(N,)``."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.ndim != 2 or indices.shape[0] != len(stems):
        raise ValueError(f'{path}: indices of shape {indices.shape} for '
                         f'{len(stems)} images')
    with atomic_write(path) as tmp:
        np.savez(tmp, indices=indices, stems=np.asarray(stems, dtype=str))


def read_knn_file(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(indices, stems)`` of a kNN file, validated.

    Raises:
        FileNotFoundError / ValueError: naming ``path``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'kNN file not found: {path} (create it with '
                                'tools/uss/precompute_knn.py)')
    with np.load(path, allow_pickle=False) as content:
        if 'indices' not in content or 'stems' not in content:
            raise ValueError(f'{path}: a kNN file needs arrays "indices" and '
                             f'"stems", found {sorted(content.files)}')
        indices, stems = content['indices'], content['stems']
    if indices.ndim != 2 or indices.shape[0] != stems.shape[0]:
        raise ValueError(f'{path}: indices {indices.shape} do not match '
                         f'{stems.shape[0]} stems')
    if indices.size and (indices.min() < 0 or indices.max() >= len(stems)):
        raise ValueError(f'{path}: neighbour indices outside 0..{len(stems) - 1}')
    return indices.astype(np.int64), stems


def neighbours_for(dataset_stems: Sequence[str], knn_indices: np.ndarray,
                   knn_stems: Sequence[str], path: str = '<knn>') -> List[np.ndarray]:
    """For each dataset item, the dataset indices of its kNN neighbours.

    Raises:
        KeyError: naming ``path`` and the image when the file has no row for it.
    """
    row_of = {str(stem): row for row, stem in enumerate(knn_stems)}
    index_of = {stem: index for index, stem in enumerate(dataset_stems)}
    result = []
    for stem in dataset_stems:
        if stem not in row_of:
            raise KeyError(f'{path}: no neighbours for image {stem}; re-run '
                           'tools/uss/precompute_knn.py for this dataset')
        names = (str(knn_stems[j]) for j in knn_indices[row_of[stem]])
        result.append(np.array([index_of[name] for name in names
                                if name in index_of], dtype=np.int64))
    return result


@DATASETS.register_module()
class USSPairDataset:
    """Wraps a segmentation dataset: item ``i`` is image ``i`` (the anchor), a
    random one of its ``num_neighbors`` nearest neighbours (the positive) and,
    with ``with_negative``, a random other image (an extra negative).

    Each image runs through the wrapped dataset's own pipeline (so each gets its own
    random crop). An item is ``dict(inputs=[...], data_samples=[...])`` with one entry
    per role; every data sample carries ``metainfo['uss_role']``
    (``anchor``/``positive``/``negative``). Use it with
    :class:`~mars_mm.models.uss.USSDataPreProcessor`.

    Args:
        dataset: the wrapped dataset or its config.
        knn_file: the kNN ``.npz`` file.
        num_neighbors: use the first k neighbours of each row (None: all).
        with_negative: add a random other image.
        lazy_init: defer loading (as mmengine datasets).
    """

    def __init__(self, dataset: Union[dict, BaseDataset], knn_file: str,
                 num_neighbors: Union[int, None] = None, with_negative: bool = True,
                 lazy_init: bool = False) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) \
            else dataset
        self.knn_file = knn_file
        self.num_neighbors = num_neighbors
        self.with_negative = with_negative
        self._metainfo = copy.deepcopy(self.dataset.metainfo)
        self.neighbours: List[np.ndarray] = []
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @property
    def metainfo(self) -> dict:
        return copy.deepcopy(self._metainfo)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.dataset.full_init()
        indices, stems = read_knn_file(self.knn_file)
        if self.num_neighbors is not None:
            indices = indices[:, :self.num_neighbors]
        self.neighbours = neighbours_for(image_stems(self.dataset), indices, stems,
                                         self.knn_file)
        lonely = sum(1 for row in self.neighbours if row.size == 0)
        if lonely:
            warnings.warn(f'{self.knn_file}: {lonely} images have no neighbour in '
                          'the dataset; they are paired with random images',
                          stacklevel=2)
        if len(self.dataset) < 2:
            raise ValueError('USSPairDataset needs at least 2 images')
        self._fully_initialized = True

    def __len__(self) -> int:
        return len(self.dataset)

    def get_data_info(self, idx: int) -> dict:
        return self.dataset.get_data_info(idx)

    def _other(self, idx: int) -> int:
        other = np.random.randint(len(self.dataset) - 1)
        return other + 1 if other >= idx else other

    def __getitem__(self, idx: int) -> dict:
        if not self._fully_initialized:
            self.full_init()
        row = self.neighbours[idx]
        positive = int(np.random.choice(row)) if row.size else self._other(idx)
        members = [(idx, 'anchor'), (positive, 'positive')]
        if self.with_negative:
            members.append((self._other(idx), 'negative'))
        inputs, samples = [], []
        for index, role in members:
            item = self.dataset[index]
            item['data_samples'].set_metainfo({USS_ROLE_KEY: role})
            inputs.append(item['inputs'])
            samples.append(item['data_samples'])
        return dict(inputs=inputs, data_samples=samples)
