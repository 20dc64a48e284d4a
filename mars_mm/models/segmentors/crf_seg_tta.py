"""Test-time augmentation followed by dense-CRF post-processing (MARS evaluation)."""
from typing import List, Optional

import numpy as np
import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import SegTTAModel
from mmseg.utils import SampleList

from mars_mm.core.crf import CRFParams
from mars_mm.core.refine import crf_refine_probs, present_classes
from mars_mm.registry import MODELS
from mars_mm.utils.io import read_rgb


@MODELS.register_module()
class CRFSegTTAModel(SegTTAModel):
    """mmseg's ``SegTTAModel`` (softmax averaged over the augmented views), then CRF.

    The spec's evaluation: scales (1.0, 0.5, 1.5, 2.0) + flip (from the config's
    ``tta_pipeline``), softmax averaged, then a dense CRF on the original image
    through the shared wrapper :func:`mars_mm.core.crf.dense_crf`. With
    ``crf=None`` it is exactly ``SegTTAModel``. Using only the scale 1.0 in
    ``tta_pipeline`` gives single-scale + CRF.

    **[decision]** Only background plus the classes that win the averaged argmax
    somewhere, or reach ``candidate_min_prob`` somewhere, enter the CRF (the CRF
    cost grows with the number of labels: 81 COCO labels take seconds per image).

    Args:
        module: the segmentor config or module.
        crf: None (no CRF) or a dict of :class:`~mars_mm.core.crf.CRFParams`
            fields (``{}`` for the literature's defaults).
        candidate_min_prob: see above.
        data_preprocessor: as ``BaseTTAModel``.
    """

    def __init__(self, module, crf: Optional[dict] = None,
                 candidate_min_prob: float = 0.1,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(module=module, data_preprocessor=data_preprocessor)
        self.crf = None if crf is None else CRFParams(**crf)
        self.candidate_min_prob = candidate_min_prob

    def merge_preds(self, data_samples_list: List[SampleList]) -> SampleList:
        """Average the views' probabilities per image, optionally CRF, argmax.

        Args:
            data_samples_list: per image, the predictions of its augmented views
                (each ``seg_logits`` already at the original image size).

        Returns:
            list: one ``SegDataSample`` per image with ``pred_sem_seg`` and
            ``seg_logits`` (the averaged, possibly refined, probabilities).
        """
        if self.module.out_channels == 1 or self.crf is None:
            return super().merge_preds(data_samples_list)
        merged = []
        for views in data_samples_list:
            probs = torch.stack([view.seg_logits.data.softmax(dim=0)
                                 for view in views]).mean(dim=0)
            probs = self._refine(views[0].img_path, probs)
            sample = views[0]
            sample.set_data({'seg_logits': PixelData(data=probs),
                             'pred_sem_seg': PixelData(
                                 data=probs.argmax(dim=0, keepdim=True))})
            merged.append(sample)
        return merged

    def _refine(self, img_path: str, probs: torch.Tensor) -> torch.Tensor:
        image = read_rgb(img_path)
        if image.shape[:2] != tuple(probs.shape[1:]):
            raise ValueError(f'{img_path}: image {image.shape[:2]} and prediction '
                             f'{tuple(probs.shape[1:])} differ in size')
        array = probs.float().cpu().numpy()
        candidates = present_classes(array, self.candidate_min_prob)
        refined = crf_refine_probs(image, array, candidates, self.crf)
        return torch.from_numpy(np.ascontiguousarray(refined)).to(probs)
