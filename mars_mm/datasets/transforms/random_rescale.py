"""RandomRescale: resize by a random factor of the image's own size."""
from typing import Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mars_mm.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomRescale(BaseTransform):
    """Rescale the image (and its maps) by a factor drawn from ``ratio_range``.

    mmcv's ``RandomResize`` draws a size around a fixed target ``scale``, so on a
    dataset whose images differ in size (VOC, the ``voc-like`` planted preset) it
    shrinks the large ones and blows up the small ones to one size; small objects
    then vanish at training time. This transform keeps each image's own scale and
    only jitters it, the augmentation the CPU recipes train with.

    Required Keys:

    - img
    - gt_seg_map (optional)

    Modified Keys:

    - img
    - img_shape
    - gt_seg_map (optional)

    Added Keys:

    - scale
    - scale_factor
    - keep_ratio

    Args:
        ratio_range: (min, max) factor, drawn uniformly.
        resize_type: the resize transform doing the work (mmcv's / mmseg's
            ``Resize``: bilinear for the image, nearest for the maps).
    """

    def __init__(self, ratio_range: Tuple[float, float] = (0.75, 1.5),
                 resize_type: str = 'Resize') -> None:
        low, high = ratio_range
        if not 0 < low <= high:
            raise ValueError(f'ratio_range must satisfy 0 < min <= max, got '
                             f'{ratio_range}')
        self.ratio_range = (float(low), float(high))
        self.resize_type = resize_type
        # scale=0 (falsy): the resize uses the scale set per call, as mmcv's
        # RandomResize does with its inner Resize
        self.resize = TRANSFORMS.build(dict(type=resize_type, scale=0,
                                            keep_ratio=True))

    def transform(self, results: dict) -> dict:
        """Rescale ``results`` by a random factor (see the class docstring)."""
        ratio = np.random.uniform(*self.ratio_range)
        height, width = results['img'].shape[:2]
        scale = (max(1, int(round(width * ratio))), max(1, int(round(height * ratio))))
        results['scale'] = scale
        self.resize.scale = scale
        return self.resize(results)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(ratio_range={self.ratio_range}, '
                f'resize_type={self.resize_type!r})')
