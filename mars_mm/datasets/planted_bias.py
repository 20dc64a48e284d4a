"""The planted-bias dataset (see :mod:`mars_mm.datasets.generators.planted_bias`)."""
import json
import os.path as osp
from typing import Optional, Sequence

from mars_mm.registry import DATASETS
from mars_mm.utils.io import voc_palette

from .generators.planted_bias import DEFAULT_CLASSES
from .wsss_voc import WSSSVOCDataset

PLANTED_CLASSES = ('background',) + tuple(DEFAULT_CLASSES)


@DATASETS.register_module()
class PlantedBiasDataset(WSSSVOCDataset):
    """A generated planted-bias dataset (VOC layout, tags from its XML).

    The classes default to the generator's defaults. A dataset generated with other
    classes is read with ``metainfo=dict(classes=('background', ...))``, or, without
    ``metainfo``, with the classes recorded in ``<data_root>/meta.json``. Class ids
    are positions in that list (no remapping: the generator wrote them so).

    Raises:
        ValueError: when ``metainfo`` classes disagree with ``meta.json``.
    """
    METAINFO = dict(classes=PLANTED_CLASSES,
                    palette=voc_palette(len(PLANTED_CLASSES)).tolist())

    def __init__(self, metainfo: Optional[dict] = None,
                 data_root: Optional[str] = None, **kwargs) -> None:
        recorded = self._recorded_classes(data_root)
        metainfo = dict(metainfo or {})
        if recorded is not None:
            if 'classes' in metainfo and list(metainfo['classes']) != recorded:
                raise ValueError(
                    f'{osp.join(data_root, "meta.json")}: the dataset was generated '
                    f'with classes {recorded}, metainfo says '
                    f'{list(metainfo["classes"])}')
            metainfo.setdefault('classes', tuple(recorded))
        if 'classes' in metainfo and 'palette' not in metainfo:
            metainfo['palette'] = voc_palette(len(metainfo['classes'])).tolist()
        super().__init__(metainfo=metainfo or None, data_root=data_root, **kwargs)

    @staticmethod
    def _recorded_classes(data_root: Optional[str]) -> Optional[list]:
        meta_path = osp.join(data_root, 'meta.json') if data_root else None
        if meta_path is None or not osp.isfile(meta_path):
            return None
        with open(meta_path) as handle:
            return list(json.load(handle)['classes'])

    @classmethod
    def get_label_map(cls, new_classes: Optional[Sequence] = None) -> None:
        """No remapping: generated ids already index the dataset's own classes."""
        return None

    def known_class_names(self) -> list:
        """XML names are checked against this dataset's own class list."""
        return list(self._metainfo['classes'])
