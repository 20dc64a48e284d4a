"""LoadImageTags: make ``img_tags`` available to the pipeline."""
from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform

from mars_mm.registry import TRANSFORMS

from ..wsss_base import tags_from_label


@TRANSFORMS.register_module()
class LoadImageTags(BaseTransform):
    """Put the image's foreground class ids in ``results['img_tags']``.

    Tags given by the dataset (from XML, a tag file or a mask) are normalised to a
    sorted, unique int64 array. Without them the tags are derived from
    ``gt_seg_map`` (so this transform then follows ``LoadAnnotations`` or
    ``LoadPseudoLabel``), ignoring 0 (background), 254 (biased) and 255 (ignore).

    Required Keys:

    - img_tags (optional) or gt_seg_map
    - num_classes (optional; set by the WSSS datasets)

    Modified Keys:

    - img_tags

    Added Keys:

    - img_tags

    Args:
        num_classes: classes including background, to validate tags against;
            defaults to ``results['num_classes']`` when the dataset sets it.
        from_seg_map: derive tags from ``gt_seg_map`` even when the dataset gave
            some (e.g. tags of a pseudo label).
        allow_missing: pass the results through without ``img_tags`` when there are
            neither tags nor a mask. Test pipelines set it: mmseg's
            ``inference_model``/``MMSegInferencer`` feed bare images through them,
            and prediction needs no tags. Training pipelines keep the error.
    """

    def __init__(self, num_classes: Optional[int] = None,
                 from_seg_map: bool = False, allow_missing: bool = False) -> None:
        self.num_classes = num_classes
        self.from_seg_map = from_seg_map
        self.allow_missing = allow_missing

    def transform(self, results: dict) -> dict:
        """Set ``results['img_tags']``; raise naming the image if impossible."""
        name = results.get('img_path', '<unknown image>')
        num_classes = self.num_classes or results.get('num_classes')
        if results.get('img_tags') is not None and not self.from_seg_map:
            tags = np.unique(np.asarray(results['img_tags'], dtype=np.int64))
            if tags.size and (tags.min() < 1 or (num_classes is not None
                                                 and tags.max() >= num_classes)):
                raise ValueError(f'{name}: image tags {tags.tolist()} outside 1..'
                                 f'{"C" if num_classes is None else num_classes - 1}')
        elif 'gt_seg_map' in results:
            label = results['gt_seg_map']
            if num_classes is None:
                # without a class count only the reserved values are excluded
                num_classes = 254
            tags = tags_from_label(label, num_classes,
                                   results.get('seg_map_path', name))
        elif self.allow_missing:
            return results
        else:
            raise KeyError(f'{name}: no img_tags from the dataset and no gt_seg_map '
                           'to derive them from (load a mask first)')
        results['img_tags'] = tags
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(num_classes={self.num_classes}, '
                f'from_seg_map={self.from_seg_map}, '
                f'allow_missing={self.allow_missing})')
