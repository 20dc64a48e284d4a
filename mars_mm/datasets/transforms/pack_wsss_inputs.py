"""PackWSSSInputs: mmseg's packer, carrying the image tags to the model."""
from typing import Sequence

from mmseg.datasets.transforms import PackSegInputs

from mars_mm.registry import TRANSFORMS

DEFAULT_META_KEYS = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape',
                     'pad_shape', 'scale_factor', 'flip', 'flip_direction',
                     'reduce_zero_label', 'img_tags')


@TRANSFORMS.register_module()
class PackWSSSInputs(PackSegInputs):
    """Pack image, optional ``gt_seg_map`` and metainfo, ``img_tags`` included.

    Used for classification (no mask in ``results``: the data sample has metainfo
    only) and for segmentation alike; models read
    ``data_sample.metainfo['img_tags']``.

    Required Keys:

    - img
    - gt_seg_map (optional)
    - img_tags (optional) and the other ``meta_keys``

    Added Keys:

    - inputs
    - data_samples

    Args:
        meta_keys: keys copied to the data sample's metainfo when present.
    """

    def __init__(self, meta_keys: Sequence[str] = DEFAULT_META_KEYS) -> None:
        super().__init__(meta_keys=tuple(meta_keys))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
