"""PASCAL VOC 2012 (+ SBD ``train_aug``) with image-level tags."""
from typing import Optional

from mars_mm.registry import DATASETS
from mars_mm.utils.io import voc_palette

from .class_names import VOC_CLASSES
from .wsss_base import WSSSBaseDataset


@DATASETS.register_module()
class WSSSVOCDataset(WSSSBaseDataset):
    """VOC 2012 for weak supervision: images, tags from XML, optional GT masks.

    Layout (``data_root`` = ``VOCdevkit/VOC2012``)::

        JPEGImages/<stem>.jpg
        Annotations/<stem>.xml                  tags (all trainval images have one)
        SegmentationClass/<stem>.png            GT of train (1,464) / val (1,449)
        SegmentationClassAug/<stem>.png         GT of train_aug (SBD converter)
        ImageSets/Segmentation/{train,train_aug,val,test}.txt

    ``img_tags`` are read from ``Annotations/<stem>.xml``; when an image has no XML
    they are derived from its mask. For the test split pass ``with_seg_map=False``
    and ``with_tags=False``.

    Args:
        ann_file: split file relative to ``data_root``.
        xml_dir: XML folder relative to ``data_root`` (None: tags from masks).
        **kwargs: :class:`WSSSBaseDataset` / ``BaseSegDataset`` arguments
            (``data_prefix`` defaults to ``JPEGImages`` / ``SegmentationClass``).
    """
    METAINFO = dict(classes=VOC_CLASSES,
                    palette=voc_palette(len(VOC_CLASSES)).tolist())
    DEFAULT_DATA_PREFIX = dict(img_path='JPEGImages', seg_map_path='SegmentationClass')

    def __init__(self,
                 ann_file: str = 'ImageSets/Segmentation/train.txt',
                 xml_dir: Optional[str] = 'Annotations',
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, xml_dir=xml_dir, **kwargs)
