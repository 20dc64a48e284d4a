"""Data preprocessing for batches of (anchor, positive, negative) image groups."""
from typing import Any, Dict

from mmseg.models.data_preprocessor import SegDataPreProcessor

from mars_mm.registry import MODELS


@MODELS.register_module()
class USSDataPreProcessor(SegDataPreProcessor):
    """``SegDataPreProcessor`` that also accepts grouped inputs.

    A :class:`~mars_mm.datasets.USSPairDataset` item holds a list of images (anchor,
    kNN positive, optional negative); collated, ``inputs`` becomes one list per role.
    The groups are flattened (all anchors, then all positives, ...) and normalised,
    padded and stacked as one batch; each data sample keeps its ``uss_role``
    metainfo, from which the model splits the batch again. Plain batches pass
    through unchanged, so the same model evaluates on ordinary datasets.
    """

    def forward(self, data: dict, training: bool = False) -> Dict[str, Any]:
        inputs = data['inputs']
        if len(inputs) and isinstance(inputs[0], (list, tuple)):
            samples = data.get('data_samples')
            data = dict(data)
            data['inputs'] = [image for group in inputs for image in group]
            if samples is not None:
                data['data_samples'] = [sample for group in samples
                                        for sample in group]
        return super().forward(data, training)
