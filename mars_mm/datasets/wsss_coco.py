"""COCO 2014 for weak supervision: 81 classes, tags from the converter's tag file."""
from typing import Optional

from mars_mm.registry import DATASETS
from mars_mm.utils.io import voc_palette

from .wsss_base import WSSSBaseDataset

#: The 80 COCO categories in the standard order (category ids 1..90 sorted).
COCO_THING_CLASSES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
    'boat', 'traffic light', 'fire hydrant', 'stop sign', 'parking meter', 'bench',
    'bird', 'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra',
    'giraffe', 'backpack', 'umbrella', 'handbag', 'tie', 'suitcase', 'frisbee',
    'skis', 'snowboard', 'sports ball', 'kite', 'baseball bat', 'baseball glove',
    'skateboard', 'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup', 'fork',
    'knife', 'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli',
    'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
    'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator', 'book',
    'clock', 'vase', 'scissors', 'teddy bear', 'hair drier', 'toothbrush')
COCO_CLASSES = ('background',) + COCO_THING_CLASSES


@DATASETS.register_module()
class WSSSCOCODataset(WSSSBaseDataset):
    """COCO 2014 converted by ``tools/dataset_converters/coco_wsss.py``.

    Layout (``data_root`` = ``data/coco2014``)::

        train2014/COCO_train2014_<id>.jpg         images as downloaded (val2014 alike)
        SegmentationClass/train2014/<stem>.png    class-index masks (converter)
        ImageSets/train2014.txt                   all converted images (converter)
        tags/train2014.json                       per-image tags (converter)

    Images without any annotation (about 1% of COCO) have no tag: they are skipped
    with a warning by default (``empty_tags='skip'``); evaluation configs keep them
    (``empty_tags='keep'``), their masks being all background.

    Args:
        ann_file: split file relative to ``data_root``.
        tag_file: tag file relative to ``data_root`` (None: tags from the masks).
        **kwargs: :class:`WSSSBaseDataset` / ``BaseSegDataset`` arguments.
    """
    METAINFO = dict(classes=COCO_CLASSES,
                    palette=voc_palette(len(COCO_CLASSES)).tolist())
    DEFAULT_DATA_PREFIX = dict(img_path='train2014',
                               seg_map_path='SegmentationClass/train2014')

    def __init__(self,
                 ann_file: str = 'ImageSets/train2014.txt',
                 tag_file: Optional[str] = 'tags/train2014.json',
                 **kwargs) -> None:
        super().__init__(ann_file=ann_file, tag_file=tag_file, **kwargs)
