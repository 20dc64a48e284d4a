"""What Stage 3 runs on: the split (:class:`Sample`) and the settings.

:class:`DebiasSettings` is the ``debias`` dict of a ``configs/mars/debias_*.py``
config, checked when it is built so that a typo fails before hours of k-means, and
it names every file of the work dir. Its field defaults are Stage 3's defaults, the
one source: ``configs/_base_/debias/mars.py`` restates them for configs and
``--cfg-options``, and ``tests/test_debias/test_settings.py`` keeps the two equal.
"""
import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from mars_mm.core.debias import Refinement, check_tag_source
from mars_mm.utils.io import stem_of

#: ``'dataset'`` subtracts the dataset mean embedding before normalisation.
CENTRING = ('none', 'dataset')
#: The bias report's options; ``DebiasSettings.report`` overrides some of them.
REPORT_DEFAULTS = dict(enabled=True, gallery=8, dpi=150)


class Sample(NamedTuple):
    """One image of the split.

    Attributes:
        stem: file stem shared by the image, label and embedding.
        img_path: the RGB image (needed by the CRF and the report).
        tags: image-level classes, or ``None`` to derive them (see ``tag_source``).
        gt_path: ground-truth mask if known (tags from GT, report IoU), else ``None``.
    """
    stem: str
    img_path: Optional[str]
    tags: Optional[np.ndarray]
    gt_path: Optional[str] = None


@dataclass
class DebiasSettings:
    """Everything Stage 3 needs; the ``debias`` dict of a ``configs/mars/`` config.

    Attributes:
        pseudo_label_dir: folder of baseline pseudo-label PNGs ``<stem>.png``.
        embedding_dir: folder of embeddings ``<stem>.npy`` (float16 ``(D, h, w)``).
        work_dir: output folder (centroids, ``labels/``, ``report/``).
        num_classes: C + 1 (background included).
        class_names: names of the C + 1 classes (reports); default ``class<i>``.
        k_fg, k_bg: k-means clusters per foreground class / for the background.
        alpha: share of each class's centroids kept for ``V_c``.
        centring: ``'dataset'`` subtracts the dataset mean of the embeddings before
            normalisation **[decision]**, ``'none'`` uses raw codes (paper).
        kmeans_iters, seed: k-means settings (fixed seed: reproducible).
        refinement: dict for :meth:`mars_mm.core.refine.Refinement.from_config`.
        tag_source: one of :data:`mars_mm.core.debias.TAG_SOURCES`: ``'img_tags'``
            (the dataset's tags, the paper's ``C_I``), ``'gt'`` (classes of the GT
            mask) or ``'pseudo_label'`` (its classes). ``'dataset'``, the v0.1
            name of ``'img_tags'``, is still accepted.
        embedding_stride: expected stride of the embedding grid (``h = ceil(H / s)``);
            ``None`` accepts any grid.
        num_workers: processes of the centroid and label passes.
        label_suffix, embedding_suffix: file endings.
        report: bias-report options, merged over :data:`REPORT_DEFAULTS`
            (``enabled``, ``gallery`` images at most, figure ``dpi``).
        device: torch device for pass 1 (``'cpu'``; k-means is cheap).
    """
    pseudo_label_dir: str
    embedding_dir: str
    work_dir: str
    num_classes: int
    class_names: Optional[Sequence[str]] = None
    k_fg: int = 2
    k_bg: int = 2
    alpha: float = 0.4
    centring: str = 'none'
    kmeans_iters: int = 30
    seed: int = 0
    # the CRF on the foreground's box + 32 px: only foreground pixels can change, and
    # it decides as the whole-image CRF on 99.98% of them at 2.4x less CPU
    # (benchmarks/refinement.py); crop_margin=None is the paper's whole image
    refinement: Dict[str, Any] = field(
        default_factory=lambda: dict(type='crf', crop_margin=32))
    tag_source: str = 'img_tags'
    embedding_stride: Optional[int] = 8
    num_workers: int = 2
    label_suffix: str = '.png'
    embedding_suffix: str = '.npy'
    report: Dict[str, Any] = field(default_factory=lambda: dict(REPORT_DEFAULTS))
    device: str = 'cpu'

    def __post_init__(self) -> None:
        if self.centring not in CENTRING:
            raise ValueError(f'centring must be one of {CENTRING}, got '
                             f'{self.centring!r}')
        self.tag_source = check_tag_source(self.tag_source)
        if self.k_fg < 1 or self.k_bg < 1:
            raise ValueError(f'k_fg and k_bg must be >= 1, got {self.k_fg}, '
                             f'{self.k_bg}')
        if not 0 < self.alpha <= 1:
            raise ValueError(f'alpha must lie in (0, 1], got {self.alpha}')
        Refinement.from_config(self.refinement)  # validate early
        self.report = {**REPORT_DEFAULTS, **(self.report or {})}
        if self.class_names is None:
            self.class_names = ['background'] + [
                f'class{i}' for i in range(1, self.num_classes)]
        self.class_names = list(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f'{len(self.class_names)} class names for '
                             f'{self.num_classes} classes')

    # paths -------------------------------------------------------------------------
    def label_path(self, stem: str) -> str:
        """The baseline pseudo label of an image."""
        return osp.join(self.pseudo_label_dir, stem + self.label_suffix)

    def embedding_path(self, stem: str) -> str:
        """The embedding of an image."""
        return osp.join(self.embedding_dir, stem + self.embedding_suffix)

    def image_centroid_path(self, stem: str) -> str:
        """Pass 1's centroid file of an image."""
        return osp.join(self.work_dir, 'centroids', stem + '.npz')

    def output_label_path(self, stem: str) -> str:
        """Pass 2's debiased label of an image."""
        return osp.join(self.work_dir, 'labels', stem + '.png')

    @property
    def centroid_file(self) -> str:
        return osp.join(self.work_dir, 'centroids.npz')

    @property
    def vector_file(self) -> str:
        return osp.join(self.work_dir, 'centroid_vectors.npy')

    @property
    def mean_file(self) -> str:
        return osp.join(self.work_dir, 'embedding_mean.npy')

    def pass1_params(self) -> dict:
        """Settings that determine the per-image centroid files."""
        return dict(k_fg=self.k_fg, k_bg=self.k_bg, centring=self.centring,
                    kmeans_iters=self.kmeans_iters, seed=self.seed,
                    pseudo_label_dir=osp.abspath(self.pseudo_label_dir),
                    embedding_dir=osp.abspath(self.embedding_dir))


def samples_from_dataset(dataset: Any) -> List[Sample]:
    """Samples from a built mmseg dataset (``img_path``, ``img_tags``, GT path).

    Args:
        dataset: anything with ``__len__`` and ``get_data_info(index)`` returning
            mmseg's data-info dicts.
    """
    samples = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        img_path = info['img_path']
        stem = stem_of(img_path)
        tags = info.get('img_tags', None)
        gt_path = info.get('seg_map_path', None)
        if gt_path is not None and not osp.isfile(gt_path):
            gt_path = None
        samples.append(Sample(stem, img_path,
                              None if tags is None else np.asarray(tags, np.int64),
                              gt_path))
    return samples


def settings_from_config(cfg: Any, class_names: Sequence[str]) -> DebiasSettings:
    """:class:`DebiasSettings` from ``cfg.debias`` (work dir: ``cfg.work_dir``).

    Args:
        cfg: an mmengine ``Config`` (or dict) with a ``debias`` dict.
        class_names: the dataset's classes, background first (the defaults of
            ``class_names`` and ``num_classes``).
    """
    options = dict(cfg.debias)
    options.pop('dataset', None)
    options.setdefault('work_dir', cfg.get('work_dir'))
    options.setdefault('class_names', list(class_names))
    options.setdefault('num_classes', len(class_names))
    options['refinement'] = dict(options.get('refinement') or
                                 dict(type='crf', crop_margin=32))
    if isinstance(options['refinement'].get('crf'), dict):
        options['refinement']['crf'] = dict(options['refinement']['crf'])
    options['report'] = dict(options.get('report') or {})
    return DebiasSettings(**options)
