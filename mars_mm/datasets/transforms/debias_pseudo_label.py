"""Debias a loaded pseudo label inside a data pipeline (MARS steps 4-6 online)."""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mars_mm.core.debias import (
    Refinement,
    check_tag_source,
    classes_in_label,
    debias_image,
)
from mars_mm.debias.formats import load_centroid_file, load_embedding
from mars_mm.registry import TRANSFORMS
from mars_mm.utils.io import stem_of

#: The tag sources a pipeline can use: its ``gt_seg_map`` holds the pseudo label,
#: so the GT's classes (``'gt'``, offline tool only) are not at hand.
PIPELINE_TAG_SOURCES = ('img_tags', 'pseudo_label')


@TRANSFORMS.register_module()
class DebiasPseudoLabel(BaseTransform):
    """Mark the biased foreground of a pseudo label as removed (254).

    Applies the per-image part of MARS (debias map from the image's embedding and the
    dataset's debiased centroids, CRF or threshold, label rule) to ``gt_seg_map``. The
    result equals the offline tool's (``tools/mars/debias.py``) for the same image,
    centroid file and refinement. Place it right after the loading transforms, before
    any geometric transform: the label, image and embedding must be at original size.

    Required Keys:

    - img_path (str): its stem names the embedding ``<embedding_dir>/<stem>.npy``.
    - gt_seg_map (np.uint8): the baseline pseudo label, ``(H, W)``.
    - img (np.uint8): ``(H, W, 3)``, only with CRF refinement.
    - img_tags (np.ndarray): image-level classes, only with ``tag_source='img_tags'``.

    Modified Keys:

    - gt_seg_map

    Added Keys:

    - debias_map (np.float32): ``(H, W)`` map in [0, 1], only with ``keep_map``.

    Args:
        centroid_file (str): ``centroids.npz`` written by the offline tool.
        embedding_dir (str): folder of ``(D, h, w)`` embeddings.
        refinement (dict): ``dict(type='crf', gamma=1.0, crf=dict(...))`` or
            ``dict(type='threshold', threshold=0.5)``; use the tool's setting.
        tag_source (str): ``'img_tags'`` (the dataset's tags, the paper's) or
            ``'pseudo_label'`` (the classes present in the label), as named for the
            tool (:data:`mars_mm.core.debias.TAG_SOURCES`; ``'dataset'`` means
            ``'img_tags'``).
        embedding_suffix (str): file ending of the embeddings.
        embedding_stride (int, optional): checked grid stride; ``None`` skips it.
        img_channel_order (str): channel order of ``img`` (mmcv loads ``'bgr'``).
        keep_map (bool): also store the debias map (``debias_map``).
    """

    def __init__(self, centroid_file: str, embedding_dir: str,
                 refinement: Optional[dict] = None, tag_source: str = 'img_tags',
                 embedding_suffix: str = '.npy', embedding_stride: Optional[int] = 8,
                 img_channel_order: str = 'bgr', keep_map: bool = False) -> None:
        if img_channel_order not in ('bgr', 'rgb'):
            raise ValueError(f'img_channel_order must be bgr or rgb, got '
                             f'{img_channel_order!r}')
        self.centroid_file = centroid_file
        self.embedding_dir = embedding_dir
        self.refinement_cfg = dict(refinement or dict(type='crf'))
        self.refinement = Refinement.from_config(self.refinement_cfg)
        self.tag_source = check_tag_source(tag_source, PIPELINE_TAG_SOURCES)
        self.embedding_suffix = embedding_suffix
        self.embedding_stride = embedding_stride
        self.img_channel_order = img_channel_order
        self.keep_map = keep_map
        self._centroids = None  # loaded on first use (in each dataloader worker)

    def _load_centroids(self) -> dict:
        if self._centroids is None:
            self._centroids = load_centroid_file(self.centroid_file)
        return self._centroids

    def _tags(self, results: dict, label: np.ndarray) -> np.ndarray:
        """The image's classes ``C_I``, as the tool's ``resolve_tags`` gives them."""
        if self.tag_source == 'pseudo_label':
            # C + 1 from the centroid file: the tool's filter, on the same classes
            num_classes = len(self._load_centroids()['debiased_valid'])
            return classes_in_label(label, num_classes)
        if 'img_tags' not in results:
            raise KeyError(f'{results["img_path"]}: no img_tags in the results; '
                           "load them or set tag_source='pseudo_label'")
        return np.asarray(results['img_tags'], dtype=np.int64)

    def transform(self, results: dict) -> dict:
        label = np.asarray(results['gt_seg_map'])
        stem = stem_of(results['img_path'])
        embedding = load_embedding(
            osp.join(self.embedding_dir, stem + self.embedding_suffix), label.shape,
            self.embedding_stride)
        image = None
        if self.refinement.method == 'crf':
            image = np.asarray(results['img'])
            if image.shape[:2] != label.shape:
                raise ValueError(f'{results["img_path"]}: image {image.shape[:2]} and '
                                 f'pseudo label {label.shape} differ; put '
                                 'DebiasPseudoLabel before resizing/cropping')
            if self.img_channel_order == 'bgr':
                image = np.ascontiguousarray(image[..., ::-1])
        tags = self._tags(results, label)
        centroids = self._load_centroids()
        result = debias_image(label, embedding, tags, centroids['debiased'],
                              centroids['debiased_valid'], image,
                              centroids['embedding_mean'], self.refinement,
                              always_map=self.keep_map)
        results['gt_seg_map'] = result.label
        if self.keep_map:
            results['debias_map'] = result.debias_map if result.debias_map is not None \
                else np.ones(label.shape, np.float32)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(centroid_file={self.centroid_file!r}, '
                f'embedding_dir={self.embedding_dir!r}, '
                f'refinement={self.refinement_cfg}, tag_source={self.tag_source!r}, '
                f'embedding_suffix={self.embedding_suffix!r}, '
                f'embedding_stride={self.embedding_stride}, '
                f'img_channel_order={self.img_channel_order!r}, '
                f'keep_map={self.keep_map})')
