"""MARS Stage 4: an EncoderDecoder trained on debiased labels completed by a teacher.

The complementing maths lives in :mod:`mars_mm.core.complement` (plain functions).
:meth:`MARSEncoderDecoder.loss` puts the complemented labels and their weights
into the batch's data samples and hands them to mmseg's own ``loss``; the two
hooks mmseg's ``EncoderDecoder`` offers for the heads' losses
(``_decode_head_forward_train``, ``_auxiliary_head_forward_train``) give each
head the weights through its pixel sampler
(:mod:`mars_mm.models.heads.pixel_weight`), so every head computes its losses
with mmseg's code. The teacher is not part of this model:
:class:`mars_mm.engine.hooks.EMATeacherHook` owns the EMA model, updates it after
every optimizer step, checkpoints it, and lends this model its ``forward``.
"""
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
from mmengine.structures import PixelData
from mmseg.models.losses import CrossEntropyLoss
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.utils import SampleList
from torch import Tensor

from mars_mm.core.complement import (
    candidate_class_mask,
    complement_labels,
    complement_statistics,
    ignore_biased,
)
from mars_mm.core.crf import CRFParams
from mars_mm.core.refine import crf_refine_probs
from mars_mm.models.heads.pixel_weight import pixel_weight
from mars_mm.registry import MODELS
from mars_mm.utils.io import BIASED_INDEX

TeacherFn = Callable[[Tensor], Tensor]


class InferenceNet(nn.Module):
    """The parts of a segmentor that predict logits (backbone, neck, decode head).

    A view on the student's own modules (nothing is copied), so that the EMA teacher
    built from it by :class:`~mmengine.model.ExponentialMovingAverage` and the
    student share parameter names (``backbone.*``, ``neck.*``, ``decode_head.*``).
    """

    def __init__(self, backbone: nn.Module, neck: Optional[nn.Module],
                 decode_head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        if neck is not None:
            self.neck = neck
        self.decode_head = decode_head

    def forward(self, inputs: Tensor) -> Tensor:
        """``(N, 3, H, W)`` images -> ``(N, K, h, w)`` decode-head logits."""
        features = self.backbone(inputs)
        if hasattr(self, 'neck'):
            features = self.neck(features)
        return self.decode_head.forward(features)


def loss_modules(head: nn.Module) -> List[nn.Module]:
    """The head's ``loss_decode`` as a list (mmseg allows one module or a list)."""
    losses = head.loss_decode
    return list(losses) if isinstance(losses, nn.ModuleList) else [losses]


#: Data-sample field of the per-pixel loss weights (``PixelData``, ``(1, H, W)``).
WEIGHT_FIELD = 'gt_pixel_weight'


@MODELS.register_module()
class MARSEncoderDecoder(EncoderDecoder):
    """DeepLabV3+ (or any EncoderDecoder) trained with MARS complementing.

    In :meth:`loss`, the teacher predicts ``P_t = softmax(teacher(x))`` on the same
    augmented batch without gradient (optionally CRF-refined); ``BIASED`` (254)
    pixels take the teacher's argmax and the weight ``max_{c in C_I} P_t(c)``
    (``C_I`` = ``data_sample.metainfo['img_tags']``); every head (decode and
    auxiliary) is trained by mmseg's own loss code with its configured
    ``loss_decode`` on these labels, with ``W`` as the per-pixel ``weight`` (the
    weight its pixel sampler would give). 255 stays ignored. Logged:
    ``complement_ratio`` (share of labelled pixels that were complemented) and
    ``complement_weight`` (their mean weight).

    The spec's loss ``sum(W * CE) / #non-ignored pixels`` is mmseg's
    ``CrossEntropyLoss(avg_non_ignore=True)`` with ``weight=W``: the MARS configs
    set ``avg_non_ignore=True``.

    **The teacher belongs to** :class:`~mars_mm.engine.hooks.EMATeacherHook`, which
    builds it at the start of training from :meth:`inference_net`, updates it
    after each optimizer step, stores it in checkpoints under its own key, and
    lends this model its ``forward`` through :meth:`set_teacher`. This model holds
    only that function, so ``state_dict()``, ``parameters()``, the optimizer and
    DDP see the student alone: a checkpoint's ``state_dict`` *is* a plain
    ``EncoderDecoder`` checkpoint, and ``predict`` (validation, testing,
    ``init_model``) runs the student.

    Args:
        biased_pixels: ``'complement'`` (MARS) or ``'ignore'`` (254 -> 255, the
            "debiased labels without complementing" ablation; no teacher).
        weight_by_confidence: weight complemented pixels by the teacher's
            confidence (False: weight 1, the paper's "+complementing" row).
        weight_include_background: include class 0 in the max of the weight
            (**[decision]** default False: the spec's max over ``C_I``).
        teacher_crf: None (off), or a dict of :class:`mars_mm.core.crf.CRFParams`
            fields (``{}`` for the defaults) to refine the teacher's probabilities
            over background + the image's tags before argmax and weighting.
        biased_index: label value of removed pixels (254).
        **kwargs: everything ``EncoderDecoder`` takes.
    """

    def __init__(self,
                 *args,
                 biased_pixels: str = 'complement',
                 weight_by_confidence: bool = True,
                 weight_include_background: bool = False,
                 teacher_crf: Optional[dict] = None,
                 biased_index: int = BIASED_INDEX,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if biased_pixels not in ('complement', 'ignore'):
            raise ValueError("biased_pixels must be 'complement' or 'ignore', got "
                             f'{biased_pixels!r}')
        self.biased_pixels = biased_pixels
        self.weight_by_confidence = weight_by_confidence
        self.weight_include_background = weight_include_background
        self.teacher_crf = None if teacher_crf is None else CRFParams(**teacher_crf)
        self.biased_index = biased_index
        # A function, not a module: see set_teacher.
        self.teacher_fn: Optional[TeacherFn] = None
        if self.uses_teacher and weight_by_confidence:
            for head in self._heads():
                self._check_pixel_weighted_losses(head)

    # ------------------------------------------------------------------ teacher
    @property
    def uses_teacher(self) -> bool:
        """Whether training needs a teacher (``biased_pixels='complement'``)."""
        return self.biased_pixels == 'complement'

    def inference_net(self) -> InferenceNet:
        """The student's backbone/neck/decode head as one module (shared weights)."""
        return InferenceNet(self.backbone, self.neck if self.with_neck else None,
                            self.decode_head)

    def set_teacher(self, teacher: Optional[TeacherFn]) -> None:
        """Lend the model the function that gives the teacher's logits.

        Args:
            teacher: ``(N, 3, H, W)`` preprocessed images -> ``(N, K, h, w)``
                decode-head logits, e.g. the ``forward`` of the EMA model that
                :class:`~mars_mm.engine.hooks.EMATeacherHook` owns; None unsets.

        Raises:
            TypeError: ``teacher`` is an ``nn.Module``. Assigning a module here
                would register it as a submodule, putting the teacher into this
                model's ``state_dict``, parameters and DDP; pass its ``forward``.
        """
        if isinstance(teacher, nn.Module):
            raise TypeError('set_teacher takes a function (e.g. ema_model.forward), '
                            'not a module: a module would become part of the '
                            "student's state_dict and parameters")
        if teacher is not None and not callable(teacher):
            raise TypeError(f'teacher must be callable, got {type(teacher).__name__}')
        self.teacher_fn = teacher

    @torch.no_grad()
    def teacher_probs(self, inputs: Tensor, data_samples: SampleList,
                      size: torch.Size) -> Tensor:
        """Teacher softmax on the batch, resized to ``size``, optionally CRF-refined.

        Args:
            inputs: ``(N, 3, H, W)`` normalised images (the student's input).
            data_samples: the batch's samples (labels and tags are read for the CRF).
            size: ``(H, W)`` of the label maps.

        Returns:
            Tensor: ``(N, K, H, W)`` probabilities, no gradient.

        Raises:
            RuntimeError: no teacher was set (the config lacks ``EMATeacherHook``).
        """
        if self.teacher_fn is None:
            raise RuntimeError(
                "MARSEncoderDecoder(biased_pixels='complement') needs a teacher: add "
                "dict(type='EMATeacherHook') to the config's custom_hooks (or call "
                'set_teacher outside a Runner)')
        logits = resize(self.teacher_fn(inputs), size=size, mode='bilinear',
                        align_corners=self.align_corners)
        probs = logits.float().softmax(dim=1)
        if self.teacher_crf is not None:
            probs = self._crf_refine(inputs, probs, data_samples)
        return probs

    def _crf_refine(self, inputs: Tensor, probs: Tensor,
                    data_samples: SampleList) -> Tensor:
        """CRF over background + tags, only for images that have removed pixels."""
        images = self._denormalise(inputs)
        refined = probs.clone()
        for index, sample in enumerate(data_samples):
            labels = sample.gt_sem_seg.data
            if not bool((labels == self.biased_index).any()):
                continue
            candidates = np.concatenate([[0], self._tags_of(sample)])
            refined[index] = torch.from_numpy(crf_refine_probs(
                images[index], probs[index].cpu().numpy(), candidates,
                self.teacher_crf)).to(probs)
        return refined

    def _denormalise(self, inputs: Tensor) -> np.ndarray:
        """``(N, 3, H, W)`` normalised input -> ``(N, H, W, 3)`` uint8 RGB."""
        preprocessor = self.data_preprocessor
        images = inputs.detach().float()
        if getattr(preprocessor, '_enable_normalize', False):
            images = images * preprocessor.std + preprocessor.mean
        # mmcv loads BGR; without bgr_to_rgb the network sees BGR, the CRF wants RGB.
        if not getattr(preprocessor, 'channel_conversion', False):
            images = images.flip(1)
        images = images.clamp(0, 255).round().byte().permute(0, 2, 3, 1)
        return np.ascontiguousarray(images.cpu().numpy())

    # --------------------------------------------------------------------- loss
    def _heads(self) -> List[nn.Module]:
        """The decode head and the auxiliary head(s)."""
        heads = [self.decode_head]
        if self.with_auxiliary_head:
            heads += list(self.auxiliary_head) if isinstance(
                self.auxiliary_head, nn.ModuleList) else [self.auxiliary_head]
        return heads

    @staticmethod
    def _check_pixel_weighted_losses(head: nn.Module) -> None:
        # mmseg's other losses read `weight` as one value per image (Dice, Focal,
        # Lovasz) or not at all: a per-pixel W would fail or be dropped silently.
        for loss in loss_modules(head):
            if not isinstance(loss, CrossEntropyLoss) or loss.use_mask:
                raise ValueError(
                    f'{type(head).__name__}: weighting complemented pixels '
                    '(weight_by_confidence=True) needs losses that take a per-pixel '
                    "weight, i.e. mmseg's CrossEntropyLoss (softmax or sigmoid); "
                    f'got {type(loss).__name__}. Use weight_by_confidence=False '
                    'for other losses')

    def _tags_of(self, sample) -> np.ndarray:
        if 'img_tags' not in sample.metainfo:
            raise KeyError(
                f"{sample.metainfo.get('img_path', 'an image')}: its label has "
                f'{self.biased_index} (removed) pixels but the sample carries no '
                "'img_tags' in its metainfo; load tags (LoadImageTags) and pack them "
                '(PackWSSSInputs)')
        return np.asarray(sample.metainfo['img_tags'], dtype=np.int64).reshape(-1)

    def targets(self, inputs: Tensor, data_samples: SampleList
                ) -> Tuple[Tensor, Optional[Tensor], Dict[str, Tensor]]:
        """Complemented labels, pixel weights and statistics for a batch.

        Args:
            inputs: ``(N, 3, H, W)`` preprocessed images.
            data_samples: samples whose ``gt_sem_seg`` holds ``Y_db``.

        Returns:
            tuple: ``labels`` ``(N, H, W)`` int64, ``weights`` ``(N, H, W)`` or
            None, and a dict of logged statistics (0-d tensors).
        """
        labels = torch.stack([sample.gt_sem_seg.data.reshape(
            sample.gt_sem_seg.data.shape[-2:]) for sample in data_samples]).long()
        if self.biased_pixels == 'ignore':
            stats = complement_statistics(labels, None, self.biased_index)
            return (ignore_biased(labels, self.biased_index), None,
                    dict(ignored_biased_ratio=stats['complement_ratio']))
        biased = labels == self.biased_index
        weights = None
        if bool(biased.any()):
            tags = [self._tags_of(sample) if bool(biased[index].any()) else []
                    for index, sample in enumerate(data_samples)]
            probs = self.teacher_probs(inputs, data_samples, labels.shape[-2:])
            candidates = candidate_class_mask(
                tags, probs.shape[1], self.weight_include_background, probs.device)
            labels_co, weights = complement_labels(labels, probs, candidates,
                                                   self.biased_index)
        else:
            labels_co = labels
        stats = complement_statistics(labels, weights, self.biased_index)
        if not self.weight_by_confidence:
            weights = None
        return labels_co, weights, stats

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """Complement the labels with the teacher, then mmseg's loss on them.

        Args:
            inputs: ``(N, 3, H, W)`` preprocessed images.
            data_samples: samples with ``gt_sem_seg`` (values 0..K-1, 254, 255)
                and ``metainfo['img_tags']``; they are not modified.

        Returns:
            dict: as mmseg's ``EncoderDecoder.loss`` (``decode.<loss_name>``,
            ``decode.acc_seg``, ``aux.*`` or ``aux_<i>.*``), plus the logged
            ``complement_ratio`` and ``complement_weight`` (with
            ``biased_pixels='ignore'``: ``ignored_biased_ratio``).
        """
        labels, weights, stats = self.targets(inputs, data_samples)
        losses = super().loss(inputs, self.target_samples(data_samples, labels,
                                                          weights))
        losses.update({key: value.detach() for key, value in stats.items()})
        return losses

    @staticmethod
    def target_samples(data_samples: SampleList, labels: Tensor,
                       weights: Optional[Tensor]) -> SampleList:
        """Copies of the samples holding the training targets.

        Args:
            data_samples: the batch's samples (left unchanged).
            labels: ``(N, H, W)`` int64 labels, the new ``gt_sem_seg``.
            weights: ``(N, H, W)`` pixel weights, stored as
                :data:`WEIGHT_FIELD`, or None.
        """
        samples = []
        for index, sample in enumerate(data_samples):
            target = sample.new()  # same metainfo and fields, new label
            target.gt_sem_seg = PixelData(data=labels[index][None])
            if weights is not None:
                target.set_field(PixelData(data=weights[index][None]), WEIGHT_FIELD)
            samples.append(target)
        return samples

    @staticmethod
    def _weights(data_samples: SampleList) -> Optional[Tensor]:
        """``(N, H, W)`` weights of :meth:`target_samples`, or None."""
        if not data_samples or WEIGHT_FIELD not in data_samples[0]:
            return None
        return torch.stack([sample.get(WEIGHT_FIELD).data[0]
                            for sample in data_samples])

    def _decode_head_forward_train(self, inputs: List[Tensor],
                                   data_samples: SampleList) -> dict:
        """mmseg's decode-head loss, each pixel weighted by its sample's weight."""
        with pixel_weight([self.decode_head], self._weights(data_samples)):
            return super()._decode_head_forward_train(inputs, data_samples)

    def _auxiliary_head_forward_train(self, inputs: List[Tensor],
                                      data_samples: SampleList) -> dict:
        """mmseg's auxiliary-head losses, weighted like the decode head's."""
        with pixel_weight(self._heads()[1:], self._weights(data_samples)):
            return super()._auxiliary_head_forward_train(inputs, data_samples)
