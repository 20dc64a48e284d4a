"""Stage 1 entry points: CAM export, CAM -> pseudo labels, CAM quality sweep.

The tools in ``tools/cam/`` parse arguments and call these functions; the algorithms
live in :mod:`mars_mm.core.cam` and :mod:`mars_mm.core.crf`.

File formats follow ``docs/en/data_formats.md``: one ``<stem>.npz`` per image with
``cams`` (float16 ``(K, H, W)``, max-normalised, tag classes only) and ``keys``
(int64 ``(K,)`` class ids in 1..C); pseudo labels are palette PNGs.
"""
import copy
import dataclasses
import os
import os.path as osp
import zipfile
from functools import partial
from multiprocessing import get_context
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from tqdm import tqdm

from mars_mm.apis.splits import build_split_dataset, dataset_files
from mars_mm.core.cam import cams_to_label, image_cams
from mars_mm.core.crf import CRFParams
from mars_mm.core.metrics import ConfusionMatrix, confusion_matrix
from mars_mm.core.multiscale import DEFAULT_SCALES
from mars_mm.utils.checkpoint import load_weights
from mars_mm.utils.io import (
    check_output_dir,
    load_label_png,
    make_output_dir,
    read_rgb,
    save_label_png,
    save_with,
    stem_of,
)
from mars_mm.utils.offline import (
    check_job_settings,
    default_device,
    digest,
    file_digest,
    read_job_settings,
    run_offline_job,
)

#: Background thresholds of the default CAM quality sweep.
DEFAULT_THRESHOLDS = tuple(np.round(np.arange(0.05, 0.951, 0.05), 2).tolist())

#: Pipeline used to read images for CAM export when a config defines none:
#: no resizing (CAMs are stored at image size), tags carried in the metainfo.
DEFAULT_CAM_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='PackWSSSInputs'),
]


# ------------------------------------------------------------------------- files
def save_cams(path: str, cams: np.ndarray, keys: Sequence[int]) -> None:
    """Atomically write one image's CAMs (float16) and class ids (int64)."""
    cams = np.asarray(cams, dtype=np.float16)
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if cams.ndim != 3 or cams.shape[0] != keys.shape[0]:
        raise ValueError(f'{path}: cams {cams.shape} and keys {keys.shape} disagree')
    save_with(path, lambda tmp: np.savez_compressed(tmp, cams=cams, keys=keys))


def load_cams(path: str, num_classes: Optional[int] = None
              ) -> Tuple[np.ndarray, np.ndarray]:
    """Read a CAM file.

    Args:
        path: the ``.npz`` file.
        num_classes: classes including background; when given, every key must be
            a foreground class id ``1..num_classes-1``, each at most once.

    Returns:
        tuple: ``(K, H, W)`` float32 CAMs and ``(K,)`` int64 class ids.

    Raises:
        FileNotFoundError / ValueError: naming ``path`` and the problem.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'CAM file not found: {path}')
    try:
        with open(path, 'rb') as handle, np.load(handle) as data:
            cams, keys = data['cams'], data['keys']
    except KeyError as err:
        raise ValueError(f'{path}: a CAM file needs arrays `cams` and `keys` '
                         f'({err})') from err
    except (OSError, ValueError, EOFError, TypeError, AttributeError,
            zipfile.BadZipFile) as err:
        raise ValueError(f'{path}: cannot read CAM file: truncated or not an .npz '
                         f'archive ({type(err).__name__}: {err})') from err
    if cams.ndim != 3 or keys.ndim != 1 or cams.shape[0] != keys.shape[0]:
        raise ValueError(f'{path}: cams {cams.shape} and keys {keys.shape} disagree')
    keys = keys.astype(np.int64)
    if num_classes is not None and keys.size:
        bad = sorted({int(key) for key in keys if not 1 <= key < num_classes})
        if bad:
            raise ValueError(f'{path}: CAM keys {bad} are not foreground class ids '
                             f'1..{num_classes - 1} of the dataset')
        if len(set(keys.tolist())) != len(keys):
            raise ValueError(f'{path}: CAM keys {keys.tolist()} repeat a class')
    return cams.astype(np.float32), keys


# ---------------------------------------------------------------------- CAM export
def cam_function(model: torch.nn.Module, channels_last: bool = True,
                 fuse_bn: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's ``cam`` prepared for fast inference.

    Folding BatchNorm into the preceding convolutions and channels-last tensors are
    pure inference speed-ups (same function up to float rounding; see
    ``benchmarks/cam_inference.py``).

    On CPU the two together become a frozen oneDNN graph
    (:func:`mars_mm.apis.cam_fast.frozen_cam_function`: 1.83x the naive loop on
    ResNet-50 vs 1.20x, equal within 1e-5).

    Args:
        model: a model with a ``cam(inputs) -> (N, C, h, w)`` method, in eval mode.
    """
    on_cpu = all(p.device.type == 'cpu' for p in model.parameters())
    if fuse_bn and channels_last and on_cpu:
        from mars_mm.apis.cam_fast import frozen_cam_function
        return frozen_cam_function(model)
    if fuse_bn:
        from mmcv.cnn import fuse_conv_bn
        model = fuse_conv_bn(copy.deepcopy(model))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)

        def forward(inputs: torch.Tensor) -> torch.Tensor:
            return model.cam(inputs.contiguous(memory_format=torch.channels_last))
        return forward
    return model.cam


def _cam_model_config(config: Config) -> dict:
    """The classifier's config as built for export (no pretrained weights: the
    checkpoint replaces them)."""
    model_cfg = copy.deepcopy(config.model)
    model_cfg.pop('pretrained', None)
    if isinstance(model_cfg.get('backbone'), dict):
        model_cfg['backbone']['init_cfg'] = None
    return model_cfg


def build_cam_model(config: Config, checkpoint: Optional[str],
                    device: Optional[str] = None) -> torch.nn.Module:
    """Build the classifier of ``config`` with ``checkpoint`` weights, in eval mode.

    Raises:
        FileNotFoundError / ValueError: naming the checkpoint when it is missing,
        truncated or holds another model's weights.
    """
    from mmengine.model import revert_sync_batchnorm
    from mmseg.registry import MODELS
    init_default_scope(config.get('default_scope', 'mmseg'))
    model = MODELS.build(_cam_model_config(config))
    if checkpoint is not None:
        load_weights(model, checkpoint, getattr(config, 'filename', None)
                     or 'the config')
    # inference needs no synchronised statistics, and SyncBN has no CPU kernel
    model = revert_sync_batchnorm(model)
    return model.to(default_device(device)).eval()


def preprocessed_item(dataset, index: int, model) -> Tuple[dict, Any, List[int]]:
    """Item ``index`` of ``dataset`` through ``model``'s data preprocessor.

    Returns:
        tuple: the preprocessed batch of one image, its data sample and its image
        tags (class indices, as the dataset lists them).

    Raises:
        KeyError: naming the image when the pipeline did not pack ``img_tags``.
    """
    data = dataset[index]
    batch = model.data_preprocessor(
        dict(inputs=[data['inputs']], data_samples=[data['data_samples']]),
        training=False)
    sample = batch['data_samples'][0]
    if 'img_tags' not in sample.metainfo:
        raise KeyError(f'{sample.metainfo.get("img_path")}: no `img_tags` in the '
                       'metainfo; the CAM pipeline must pack them (PackWSSSInputs)')
    return batch, sample, [int(tag) for tag in sample.metainfo['img_tags']]


def _export_one(index: int, dataset, model, cam_fn, out_dir: str,
                scales: Sequence[float], flip: bool,
                max_batch: Optional[int]) -> str:
    batch, sample, tags = preprocessed_item(dataset, index, model)
    with torch.inference_mode():
        cams = image_cams(cam_fn, batch['inputs'][0], tags, scales, flip, max_batch)
    path = osp.join(out_dir, stem_of(sample.metainfo['img_path']) + '.npz')
    save_cams(path, cams.cpu().numpy(), sorted(tags))
    return path


def generate_cams(config: Config, checkpoint: Optional[str], out_dir: str,
                  split: str = 'train', scales: Sequence[float] = DEFAULT_SCALES,
                  flip: bool = True, max_batch: Optional[int] = None,
                  device: Optional[str] = None, resume: bool = True,
                  fast_inference: bool = True) -> int:
    """Write ``<out_dir>/<stem>.npz`` CAMs for every image of a split.

    Images are sharded over ranks (``RANK``/``WORLD_SIZE`` or a process group),
    written atomically and skipped on rerun when their file exists. The settings
    the files depend on (checkpoint digest, config digest, split, scales, flip) are
    recorded in ``<out_dir>/job_settings.json``; a rerun with other settings into
    the same folder is refused rather than mixing files made differently.

    Args:
        config: the classifier's config; ``cam_pipeline`` (if set) reads the images,
            otherwise :data:`DEFAULT_CAM_PIPELINE`.
        checkpoint: trained weights (``None`` keeps the initialisation, for tests).
        out_dir: output folder.
        split: which ``<split>_dataloader`` dataset to export.
        scales, flip, max_batch: see :func:`mars_mm.core.cam.multiscale_cams`.
        device: ``cuda``/``cpu``; default CUDA when available.
        resume: skip images whose file exists.
        fast_inference: fold BN and use channels-last (see :func:`cam_function`).

    Returns:
        int: number of images written by this process.
    """
    check_output_dir(out_dir)  # before the model is built
    scales = check_scales(scales)
    model = build_cam_model(config, checkpoint, device)
    pipeline = config.get('cam_pipeline', None) or DEFAULT_CAM_PIPELINE
    dataset = build_split_dataset(config, split, pipeline)
    classes = list(dataset.metainfo['classes'])
    head_classes = getattr(getattr(model, 'head', None), 'num_classes', None)
    if head_classes is not None and head_classes != len(classes) - 1:
        raise ValueError(
            f'{getattr(config, "filename", "the config")}: model.head.num_classes = '
            f'{head_classes}, but the {split} split has {len(classes) - 1} '
            f'foreground classes ({", ".join(classes[1:])})')
    stems = [item['stem'] for item in dataset_files(dataset)]
    if len(set(stems)) != len(stems):
        raise ValueError(f'the {split} split has duplicate image names; CAM files are '
                         'named by image stem')
    make_output_dir(out_dir)
    check_job_settings(out_dir, dict(
        job='generate_cams', checkpoint=file_digest(checkpoint),
        config=digest(dict(model=_cam_model_config(config), pipeline=pipeline)),
        split=split, classes=classes, scales=list(scales), flip=bool(flip),
        fast_inference=bool(fast_inference)),
        outputs=lambda name: name.endswith('.npz'))
    cam_fn = cam_function(model, channels_last=fast_inference, fuse_bn=fast_inference)
    process = partial(_export_one, dataset=dataset, model=model, cam_fn=cam_fn,
                      out_dir=out_dir, scales=tuple(scales), flip=flip,
                      max_batch=max_batch)
    done = run_offline_job(
        list(range(len(dataset))), process,
        output_path=lambda index: osp.join(out_dir, stems[index] + '.npz'),
        num_workers=0, desc=f'CAMs ({split})', resume=resume)
    return len(done)


# -------------------------------------------------------------------- pseudo labels
def check_scales(scales: Sequence[float], option: str = '--scales') -> tuple:
    """The scales as floats, or an error naming ``option`` if one is not > 0."""
    scales = tuple(float(scale) for scale in scales)
    if not scales or not all(scale > 0 for scale in scales):
        raise ValueError(f'{option}: scales must be positive, got {list(scales)}')
    return scales


def _pseudo_label_one(item: Dict[str, str], cam_dir: str, out_dir: str,
                      bg_power: Optional[float], bg_threshold: Optional[float],
                      crf_params: Optional[CRFParams],
                      num_classes: Optional[int] = None) -> str:
    cam_path = osp.join(cam_dir, item['stem'] + '.npz')
    cams, keys = load_cams(cam_path, num_classes)
    image = read_rgb(item['img_path']) if crf_params is not None else None
    if image is not None and image.shape[:2] != cams.shape[1:]:
        raise ValueError(f'{cam_path}: CAMs are {cams.shape[1:]} but the image '
                         f'{item["img_path"]} is {image.shape[:2]}')
    label = cams_to_label(cams, keys, image=image, bg_power=bg_power,
                          bg_threshold=bg_threshold, crf_params=crf_params)
    out_path = osp.join(out_dir, item['stem'] + '.png')
    save_label_png(out_path, label)
    return out_path


def make_pseudo_labels(cam_dir: str, dataset_config: Config, out_dir: str,
                       split: str = 'train', bg_power: Optional[float] = 2.0,
                       bg_threshold: Optional[float] = None, crf: bool = True,
                       crf_params: CRFParams = CRFParams(), num_workers: int = 0,
                       resume: bool = True) -> int:
    """CAM folder -> palette PNG pseudo labels for every image of a split.

    Args:
        cam_dir: folder of ``<stem>.npz`` CAMs (every image of the split needs one).
        dataset_config: config with ``<split>_dataloader`` (image paths).
        out_dir: output folder of ``<stem>.png``.
        split: which split.
        bg_power, bg_threshold: background rule; a threshold overrides the power.
        crf: refine with the dense CRF (background + present classes only).
        crf_params: CRF parameters.
        num_workers: worker processes (the CRF is CPU-bound).
        resume: skip images whose PNG exists.

    The settings (the CAM folder's own settings record, background rule, CRF,
    split) are recorded in ``<out_dir>/job_settings.json``; a rerun with other
    settings, or on CAMs remade with other settings, is refused.

    Returns:
        int: number of labels written by this process.
    """
    dataset = build_split_dataset(dataset_config, split, pipeline=[])
    files = dataset_files(dataset)
    classes = list(dataset.metainfo['classes'])
    missing = [item['stem'] for item in files
               if not osp.isfile(osp.join(cam_dir, item['stem'] + '.npz'))]
    if missing:
        raise FileNotFoundError(
            f'{len(missing)} of {len(files)} images of the {split} split have no CAM '
            f'file in {cam_dir} (first: {missing[0]}.npz); run generate_cams first')
    make_output_dir(out_dir)
    bg_power = None if bg_threshold is not None else bg_power
    cam_settings = read_job_settings(cam_dir)
    check_job_settings(out_dir, dict(
        job='make_pseudo_labels',
        cams=(digest(cam_settings) if cam_settings is not None
              else osp.abspath(cam_dir)),
        split=split, classes=classes, bg_power=bg_power, bg_threshold=bg_threshold,
        crf=dataclasses.asdict(crf_params) if crf else None),
        outputs=lambda name: name.endswith('.png'))
    process = partial(_pseudo_label_one, cam_dir=cam_dir, out_dir=out_dir,
                      bg_power=bg_power, bg_threshold=bg_threshold,
                      crf_params=crf_params if crf else None,
                      num_classes=len(classes))
    done = run_offline_job(
        files, process,
        output_path=lambda item: osp.join(out_dir, item['stem'] + '.png'),
        num_workers=num_workers, desc=f'pseudo labels ({split})', resume=resume)
    return len(done)


# ---------------------------------------------------------------- CAM quality sweep
def _sweep_one(pair: Tuple[str, str], thresholds: Sequence[float],
               num_classes: int) -> np.ndarray:
    """``(T, C, C)`` confusion matrices of one image at every threshold."""
    gt_path, cam_path = pair
    cams, keys = load_cams(cam_path, num_classes)
    gt = load_label_png(gt_path)
    if gt.shape != cams.shape[1:]:
        raise ValueError(f'{cam_path}: CAMs are {cams.shape[1:]} but the ground truth '
                         f'{gt_path} is {gt.shape}')
    if cams.shape[0]:
        peak, best = cams.max(axis=0), keys[cams.argmax(axis=0)]
    else:
        peak, best = np.zeros(gt.shape, np.float32), np.zeros(gt.shape, np.int64)
    # ties with the threshold go to background, as argmax([t, cams]) does
    return np.stack([confusion_matrix(gt, np.where(peak > threshold, best, 0),
                                      num_classes) for threshold in thresholds])


def eval_cams(cam_dir: str, dataset_config: Config, split: str = 'train',
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
              num_workers: int = 0) -> dict:
    """mIoU of CAM labels against ground truth over background thresholds.

    A pixel's CAM label is the image's class with the highest CAM, or background
    where that CAM does not exceed the threshold. Images and ground truth are paired
    as for label folders (:func:`mars_mm.apis.eval_labels.dataset_gt_pairs`).

    Returns:
        dict: ``thresholds`` (list), ``miou`` (list per threshold), ``best``
        (index of the best threshold), ``scores`` (the per-class
        :func:`~mars_mm.core.metrics.scores_from_confusion` at the best threshold),
        ``classes`` (names) and ``num_images``.
    """
    from mars_mm.apis.eval_labels import dataset_gt_pairs
    init_default_scope(dataset_config.get('default_scope', 'mmseg'))
    pairs, class_names = dataset_gt_pairs(dataset_config, cam_dir, split,
                                          suffix='.npz')
    missing = [cam for _, cam in pairs if not osp.isfile(cam)]
    if missing:
        raise FileNotFoundError(f'{len(missing)} of {len(pairs)} images have no CAM '
                                f'file (first: {missing[0]})')
    num_classes = len(class_names)
    thresholds = [float(t) for t in thresholds]
    process = partial(_sweep_one, thresholds=thresholds, num_classes=num_classes)
    matrices = [ConfusionMatrix(num_classes) for _ in thresholds]

    def accumulate(counts: np.ndarray) -> None:
        for matrix, count in zip(matrices, counts):
            matrix.counts += count

    bar = tqdm(total=len(pairs), desc=f'CAM sweep ({split})', dynamic_ncols=True)
    if num_workers > 0 and len(pairs) > 1:
        method = 'fork' if hasattr(os, 'fork') else 'spawn'
        with get_context(method).Pool(num_workers) as pool:
            for counts in pool.imap_unordered(process, pairs, chunksize=8):
                accumulate(counts)
                bar.update(1)
    else:
        for pair in pairs:
            accumulate(process(pair))
            bar.update(1)
    bar.close()
    summaries = [matrix.summary() for matrix in matrices]
    mious = [float(summary['miou']) for summary in summaries]
    best = int(np.nanargmax(mious))
    return dict(thresholds=thresholds, miou=mious, best=best, scores=summaries[best],
                classes=class_names, num_images=len(pairs))
