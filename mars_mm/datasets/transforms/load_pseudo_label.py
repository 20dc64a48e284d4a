"""LoadPseudoLabel: read a pseudo label PNG from any folder as ``gt_seg_map``."""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mars_mm.registry import TRANSFORMS
from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX, load_label_png


def check_label(label: np.ndarray, path: str, num_classes: Optional[int],
                image_shape: Optional[tuple]) -> None:
    """Raise naming ``path`` if ``label`` has foreign values or the wrong size.

    Args:
        label: ``(H, W)`` label map.
        path: its file.
        num_classes: classes including background (None: values not checked).
        image_shape: ``(H, W, ...)`` of the image it belongs to (None: not checked).
    """
    if image_shape is not None and tuple(label.shape[:2]) != tuple(image_shape[:2]):
        raise ValueError(f'{path}: label size {tuple(label.shape[:2])} differs from '
                         f'the image size {tuple(image_shape[:2])}')
    if num_classes is not None:
        values = np.unique(label)
        bad = values[(values >= num_classes) & (values != BIASED_INDEX)
                     & (values != IGNORE_INDEX)]
        if bad.size:
            raise ValueError(f'{path}: label values {bad.tolist()} outside 0..'
                             f'{num_classes - 1} (only 254 and 255 are allowed '
                             'beyond the classes)')


@TRANSFORMS.register_module()
class LoadPseudoLabel(BaseTransform):
    """Load ``<label_dir>/<image stem><suffix>`` as the segmentation target.

    Any method's pseudo labels plug in here (Stage 1, Stage 3, external RS+EPM
    masks). The values are kept as written: 0..C, 254 (removed by debiasing) and
    255 (ignore) stay distinct. Put it after ``LoadImageFromFile`` so that the size
    is checked against the image.

    Required Keys:

    - img_path
    - img_shape (optional, checked against the label)
    - num_classes (optional; set by the WSSS datasets)

    Modified Keys:

    - seg_fields

    Added Keys:

    - gt_seg_map (uint8 ``(H, W)``)
    - pseudo_label_path

    Args:
        label_dir: folder of pseudo-label PNGs named by image stem.
        suffix: file extension of the labels.
        num_classes: classes including background, to validate values against;
            defaults to ``results['num_classes']``.
    """

    def __init__(self, label_dir: str, suffix: str = '.png',
                 num_classes: Optional[int] = None) -> None:
        self.label_dir = label_dir
        self.suffix = suffix
        self.num_classes = num_classes

    def transform(self, results: dict) -> dict:
        """Read, validate and store the pseudo label."""
        stem = osp.splitext(osp.basename(results['img_path']))[0]
        path = osp.join(self.label_dir, stem + self.suffix)
        if not osp.isfile(path):
            raise FileNotFoundError(f'pseudo label not found for image '
                                    f'{results["img_path"]}: {path}')
        label = load_label_png(path)
        check_label(label, path, self.num_classes or results.get('num_classes'),
                    results.get('ori_shape', results.get('img_shape')))
        results['gt_seg_map'] = label
        results['pseudo_label_path'] = path
        seg_fields = results.setdefault('seg_fields', [])
        if 'gt_seg_map' not in seg_fields:
            seg_fields.append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(label_dir={self.label_dir!r}, '
                f'suffix={self.suffix!r}, num_classes={self.num_classes})')
