"""LoadPseudoLabel: read a pseudo label PNG from any folder as ``gt_seg_map``."""
import os.path as osp
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mars_mm.registry import TRANSFORMS
from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX, load_label_png, stem_of


def check_label(label: np.ndarray, path: str, num_classes: Optional[int],
                image_shape: Optional[tuple]) -> None:
    """Raise naming ``path`` if ``label`` has foreign values or the wrong size.

    Args:
        label: ``(H, W)`` label map.
        path: its file.
        num_classes: classes including background (None: values not checked).
        image_shape: ``(H, W, ...)`` of the image it belongs to (None: not checked).
    """
    if label.ndim != 2:
        raise ValueError(f'{path}: a label map must have a single channel, got '
                         f'shape {tuple(label.shape)}')
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
    """Load an image's pseudo label as the segmentation target.

    Any method's pseudo labels plug in here (Stage 1, Stage 3, external RS+EPM
    masks). The file is the one the dataset names (``pseudo_label_path``, from the
    dataset's ``pseudo_label_dir``), so a config changes the folder with one key,
    ``train_dataloader = dict(dataset=dict(pseudo_label_dir=...))``. An explicit
    ``label_dir`` overrides it: ``<label_dir>/<image stem><suffix>`` (for a pipeline
    used outside a WSSS dataset). The values are kept as written: 0..C, 254 (removed
    by debiasing) and 255 (ignore) stay distinct. Put it after ``LoadImageFromFile``
    so that the size is checked against the image.

    Required Keys:

    - img_path
    - pseudo_label_path (unless ``label_dir`` is given)
    - img_shape (optional, checked against the label)
    - num_classes (optional; set by the WSSS datasets)

    Modified Keys:

    - seg_fields
    - pseudo_label_path (the file read)

    Added Keys:

    - gt_seg_map (uint8 ``(H, W)``)

    Args:
        label_dir: folder of pseudo-label PNGs named by image stem; overrides the
            dataset's ``pseudo_label_path``. None reads the dataset's.
        suffix: file extension of the labels in ``label_dir``.
        num_classes: classes including background, to validate values against;
            defaults to ``results['num_classes']``.
    """

    def __init__(self, label_dir: Optional[str] = None, suffix: str = '.png',
                 num_classes: Optional[int] = None) -> None:
        self.label_dir = label_dir
        self.suffix = suffix
        self.num_classes = num_classes

    def _path(self, results: dict) -> str:
        if self.label_dir is not None:
            return osp.join(self.label_dir, stem_of(results['img_path']) + self.suffix)
        if not results.get('pseudo_label_path'):
            raise KeyError(f'{results["img_path"]}: no pseudo label to load: set the '
                           "dataset's pseudo_label_dir (or LoadPseudoLabel(label_dir="
                           '...))')
        return results['pseudo_label_path']

    def transform(self, results: dict) -> dict:
        """Read, validate and store the pseudo label."""
        path = self._path(results)
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
