"""MARS Stage 4: an EncoderDecoder trained on debiased labels with an EMA teacher.

The maths (complementing, weights, weighted CE) lives in
:mod:`mars_mm.core.complement`; this module wires it to mmseg's ``EncoderDecoder``.
"""
from typing import Dict, List, Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.model import ExponentialMovingAverage
from mmseg.models.losses import CrossEntropyLoss, accuracy
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.utils import resize
from mmseg.utils import SampleList, add_prefix
from torch import Tensor

from mars_mm.core.complement import (
    candidate_class_mask,
    complement_labels,
    complement_statistics,
    ignore_biased,
    weighted_cross_entropy,
)
from mars_mm.core.crf import CRFParams
from mars_mm.core.refine import crf_refine_probs
from mars_mm.registry import MODELS
from mars_mm.utils.io import BIASED_INDEX


class _InferenceNet(nn.Module):
    """The parts of a segmentor the teacher needs (backbone, neck, decode head).

    Built as a throw-away view on the student's own modules so that the EMA copy
    and the student share parameter names.
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


@MODELS.register_module()
class MARSEncoderDecoder(EncoderDecoder):
    """DeepLabV3+ (or any EncoderDecoder) trained with MARS complementing.

    In :meth:`loss` (one call per training step) the EMA teacher is first updated
    from the student, then predicts ``P_t = softmax(teacher(x))`` on the *same*
    augmented batch without gradient (optionally CRF-refined); ``BIASED`` (254)
    pixels take the teacher's argmax and the weight ``max_{c in C_I} P_t(c)``
    (``C_I`` = ``data_sample.metainfo['img_tags']``); every head is trained with
    the weighted CE of :func:`mars_mm.core.complement.weighted_cross_entropy`.
    255 stays ignored. Logged: ``complement_ratio`` (share of labelled pixels that
    were complemented) and ``complement_weight`` (their mean weight).

    **Which model users get: the student.** ``predict``/``_forward`` (validation,
    testing, ``init_model``) run the student, and ``state_dict()`` holds only the
    student, under the plain ``EncoderDecoder`` keys, so a checkpoint *is* a
    DeepLabV3+ checkpoint. The paper evaluates the network trained by the loss; the
    teacher only produces targets (with decay 0.999 it also trails the student by
    ~1000 iterations, which matters on short schedules).

    The teacher is created lazily at the first training step, as a deep copy of the
    student's backbone/neck/decode head wrapped in mmengine's
    :class:`~mmengine.model.ExponentialMovingAverage`, and it is deliberately *not*
    a registered submodule: it never reaches ``state_dict()``, the optimizer or DDP,
    it receives no gradient (``requires_grad=False`` and ``no_grad``) and stays in
    eval mode. It follows ``.to()``/``.cuda()`` via :meth:`_apply`. To keep it across
    ``--resume``, configs add ``TeacherCheckpointHook``, which stores
    :meth:`teacher_state_dict` under its own checkpoint key. Building the model for
    inference (``init_model`` with this config) creates no teacher at all.

    With gradient accumulation ``loss`` runs once per micro-batch, so the EMA
    updates once per micro-batch.

    Args:
        biased_pixels: ``'complement'`` (MARS) or ``'ignore'`` (254 -> 255, the
            "debiased labels without complementing" ablation; no teacher).
        weight_by_confidence: weight complemented pixels by the teacher's
            confidence (False: weight 1, the paper's "+complementing" row).
        weight_include_background: include class 0 in the max of the weight
            (**[decision]** default False: the spec's max over ``C_I``).
        ema_momentum: mmengine's EMA momentum, ``teacher = (1 - m) teacher + m
            student`` (**[decision]** 0.001, i.e. decay 0.999).
        ema_update_buffers: also average BN statistics (False copies the
            student's, as mmengine's ``EMAHook`` does by default).
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
                 ema_momentum: float = 0.001,
                 ema_update_buffers: bool = False,
                 teacher_crf: Optional[dict] = None,
                 biased_index: int = BIASED_INDEX,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if biased_pixels not in ('complement', 'ignore'):
            raise ValueError("biased_pixels must be 'complement' or 'ignore', got "
                             f'{biased_pixels!r}')
        if not 0.0 < ema_momentum < 1.0:
            raise ValueError(f'ema_momentum must lie in (0, 1), got {ema_momentum} '
                             '(mmengine convention: 0.001 means decay 0.999)')
        self.biased_pixels = biased_pixels
        self.weight_by_confidence = weight_by_confidence
        self.weight_include_background = weight_include_background
        self.ema_momentum = ema_momentum
        self.ema_update_buffers = ema_update_buffers
        self.teacher_crf = None if teacher_crf is None else CRFParams(**teacher_crf)
        self.biased_index = biased_index
        # Kept out of nn.Module's registry on purpose (see the class docstring).
        self.__dict__['_teacher'] = None
        for head in self._heads():
            self._check_head_losses(head)

    # ------------------------------------------------------------------ teacher
    @property
    def teacher(self) -> Optional[ExponentialMovingAverage]:
        """The EMA teacher (None before the first training step)."""
        return self.__dict__['_teacher']

    def _student_view(self) -> _InferenceNet:
        return _InferenceNet(self.backbone, self.neck if self.with_neck else None,
                             self.decode_head)

    def init_teacher(self) -> ExponentialMovingAverage:
        """Create the EMA teacher as a copy of the current student (idempotent)."""
        if self.teacher is None:
            teacher = ExponentialMovingAverage(
                self._student_view(), momentum=self.ema_momentum,
                update_buffers=self.ema_update_buffers)
            teacher.eval()
            self.__dict__['_teacher'] = teacher
        return self.teacher

    @torch.no_grad()
    def update_teacher(self) -> None:
        """One EMA step towards the student (the first one copies it)."""
        self.init_teacher().update_parameters(self._student_view())

    def teacher_state_dict(self) -> Optional[Dict[str, Tensor]]:
        """The teacher's weights and step counter, or None without a teacher."""
        if self.teacher is None:
            return None
        return {key: value.detach().cpu()
                for key, value in self.teacher.state_dict().items()}

    def load_teacher_state_dict(self, state: Dict[str, Tensor]) -> None:
        """Restore a teacher saved by :meth:`teacher_state_dict` (for resume)."""
        self.init_teacher().load_state_dict(state)

    def _apply(self, fn, *args, **kwargs):
        # .to()/.cuda()/.half() must move the unregistered teacher too.
        super()._apply(fn, *args, **kwargs)
        if self.teacher is not None:
            self.teacher._apply(fn, *args, **kwargs)
        return self

    @torch.no_grad()
    def teacher_probs(self, inputs: Tensor, data_samples: SampleList,
                      size: torch.Size) -> Tensor:
        """Teacher softmax on the batch, resized to ``size``, optionally CRF-refined.

        Args:
            inputs: ``(N, 3, H, W)`` normalised images (the student's input).
            data_samples: the batch's samples (tags are read for the CRF).
            size: ``(H, W)`` of the label maps.

        Returns:
            Tensor: ``(N, K, H, W)`` probabilities, no gradient.
        """
        teacher = self.init_teacher()
        teacher.module.eval()
        logits = teacher.module(inputs)
        logits = resize(logits, size=size, mode='bilinear',
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
        heads = [self.decode_head]
        if self.with_auxiliary_head:
            if isinstance(self.auxiliary_head, nn.ModuleList):
                heads.extend(self.auxiliary_head)
            else:
                heads.append(self.auxiliary_head)
        return heads

    @staticmethod
    def _loss_modules(head: nn.Module) -> List[nn.Module]:
        losses = head.loss_decode
        return list(losses) if isinstance(losses, nn.ModuleList) else [losses]

    def _check_head_losses(self, head: nn.Module) -> None:
        for loss in self._loss_modules(head):
            if not isinstance(loss, CrossEntropyLoss) or loss.use_sigmoid \
                    or loss.use_mask:
                raise ValueError(
                    f'MARSEncoderDecoder trains {type(head).__name__} with its '
                    'per-pixel weighted softmax cross-entropy; its loss_decode must '
                    "be CrossEntropyLoss(use_sigmoid=False), got "
                    f'{type(loss).__name__}')
            if getattr(head, 'sampler', None) is not None:
                raise ValueError(f'{type(head).__name__}: pixel samplers are not '
                                 'supported by MARSEncoderDecoder')

    def _tags_of(self, sample) -> np.ndarray:
        if 'img_tags' not in sample.metainfo:
            raise KeyError(
                f"{sample.metainfo.get('img_path', 'an image')}: its label has "
                f'{self.biased_index} (removed) pixels but the sample carries no '
                "'img_tags' in its metainfo; load tags (LoadImageTags) and pack them "
                '(PackWSSSInputs)')
        return np.asarray(sample.metainfo['img_tags'], dtype=np.int64).reshape(-1)

    def _head_loss(self, head: nn.Module, features: List[Tensor], labels: Tensor,
                   weights: Optional[Tensor]) -> Dict[str, Tensor]:
        logits = resize(head.forward(features), size=labels.shape[-2:],
                        mode='bilinear', align_corners=head.align_corners)
        losses = {}
        for loss in self._loss_modules(head):
            class_weight = None if loss.class_weight is None else \
                logits.new_tensor(loss.class_weight)
            losses[loss.loss_name] = loss.loss_weight * weighted_cross_entropy(
                logits, labels, weights, ignore_index=head.ignore_index,
                class_weight=class_weight)
        losses['acc_seg'] = accuracy(logits, labels, ignore_index=head.ignore_index)
        return losses

    def targets(self, inputs: Tensor, data_samples: SampleList):
        """Complemented labels, pixel weights and statistics for a batch.

        Args:
            inputs: ``(N, 3, H, W)`` preprocessed images.
            data_samples: samples whose ``gt_sem_seg`` holds ``Y_db``.

        Returns:
            tuple: ``labels`` ``(N, H, W)`` int64, ``weights`` ``(N, H, W)`` or
            None, and a dict of logged statistics.
        """
        labels = torch.stack([sample.gt_sem_seg.data.reshape(
            sample.gt_sem_seg.data.shape[-2:]) for sample in data_samples]).long()
        if self.biased_pixels == 'ignore':
            stats = complement_statistics(labels, None, self.biased_index)
            return (ignore_biased(labels, self.biased_index), None,
                    dict(ignored_biased_ratio=stats['complement_ratio']))
        self.update_teacher()
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
        """Complement the labels with the teacher, then weighted CE on every head.

        Args:
            inputs: ``(N, 3, H, W)`` preprocessed images.
            data_samples: samples with ``gt_sem_seg`` (values 0..K-1, 254, 255)
                and ``metainfo['img_tags']``.

        Returns:
            dict: ``decode.loss_ce``, ``decode.acc_seg`` (and ``aux.*``), plus the
            logged ``complement_ratio`` and ``complement_weight`` (with
            ``biased_pixels='ignore'``: ``ignored_biased_ratio``).
        """
        labels, weights, stats = self.targets(inputs, data_samples)
        features = self.extract_feat(inputs)
        losses = add_prefix(
            self._head_loss(self.decode_head, features, labels, weights), 'decode')
        if self.with_auxiliary_head:
            if isinstance(self.auxiliary_head, nn.ModuleList):
                for index, head in enumerate(self.auxiliary_head):
                    losses.update(add_prefix(
                        self._head_loss(head, features, labels, weights),
                        f'aux_{index}'))
            else:
                losses.update(add_prefix(self._head_loss(
                    self.auxiliary_head, features, labels, weights), 'aux'))
        losses.update({key: value.detach() for key, value in stats.items()})
        return losses
