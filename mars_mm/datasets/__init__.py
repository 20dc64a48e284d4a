"""Registered datasets and transforms."""
from . import transforms  # noqa: F401
from .planted_bias import PlantedBiasDataset  # noqa: F401
from .tagged_images import TaggedImageDataset  # noqa: F401
from .uss_pair_dataset import USSPairDataset  # noqa: F401
from .wsss_coco import WSSSCOCODataset  # noqa: F401
from .wsss_voc import WSSSVOCDataset  # noqa: F401
