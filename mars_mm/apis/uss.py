"""Stage 2 entry points: kNN pairs, embedding export and USS evaluation.

Every function takes a STEGO config (``configs/uss/``). The image lists come from the
config's ``train_dataloader`` (unwrapping :class:`USSPairDataset`), read with
``uss_image_pipeline`` (plain loading and packing), so the kNN file, training and
export all index the same images.
"""
import copy
import os.path as osp
import time
from functools import partial
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mars_mm.core.debias import resize_label_to_grid
from mars_mm.core.knn import centre_features, cosine_topk
from mars_mm.core.multiscale import DEFAULT_SCALES, multiscale_dense
from mars_mm.datasets.uss_pair_dataset import image_stems, write_knn_file
from mars_mm.debias.quantised import QUANTISED_SUFFIX, save_quantised_embedding
from mars_mm.utils.checkpoint import load_weights
from mars_mm.utils.compat import drop_save_best_for_testing
from mars_mm.utils.io import (
    check_output_dir,
    load_label_png,
    make_output_dir,
    save_array,
    stem_of,
)
from mars_mm.utils.offline import (
    check_job_settings,
    default_device,
    digest,
    file_digest,
    get_dist_info,
    run_offline_job,
)

#: reads an image for kNN features / export, without augmentation
DEFAULT_IMAGE_PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackSegInputs')]


def build_uss_model(cfg: Config, checkpoint: Optional[str] = None,
                    device: Optional[str] = None) -> torch.nn.Module:
    """The config's STEGO model in eval mode.

    Without ``checkpoint`` the model is initialised from the config (pretrained
    backbone weights through ``init_cfg``, or a seeded random backbone), which is
    what the kNN step needs before any training.
    """
    from mmseg.registry import MODELS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(copy.deepcopy(cfg.model))
    if checkpoint is None:
        model.init_weights()
    else:
        load_weights(model, checkpoint, getattr(cfg, 'filename', None)
                     or 'the config')
    return model.to(default_device(device)).eval()


def uss_image_dataset(cfg: Config, split: str = 'train'):
    """The plain image dataset of ``cfg.<split>_dataloader`` (a
    :class:`USSPairDataset` unwrapped), read with ``uss_image_pipeline``.

    Training, the kNN file and the export must index the very same image list, so
    this always takes the dataset the dataloader trains on (never a separate
    inference split with other skip rules).
    """
    from mmseg.registry import DATASETS
    key = f'{split}_dataloader'
    if cfg.get(key) is None:
        raise KeyError(f'the config has no `{key}`')
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset_cfg = copy.deepcopy(cfg[key]['dataset'])
    if dataset_cfg.get('type') == 'USSPairDataset':
        dataset_cfg = dataset_cfg['dataset']
    dataset_cfg['pipeline'] = copy.deepcopy(
        cfg.get('uss_image_pipeline', None) or DEFAULT_IMAGE_PIPELINE)
    return DATASETS.build(dataset_cfg)


def _normalised(model: torch.nn.Module, item: dict) -> torch.Tensor:
    """``(1, 3, H, W)`` normalised image on the model's device."""
    batch = model.data_preprocessor(dict(inputs=[item['inputs']]), training=False)
    return batch['inputs']


@torch.no_grad()
def _global_feature(index: int, dataset, model: torch.nn.Module,
                    size: Optional[Tuple[int, int]]) -> Tuple[int, np.ndarray]:
    image = _normalised(model, dataset[index])
    if size is not None:
        image = torch.nn.functional.interpolate(image, size=size, mode='bilinear',
                                                align_corners=False)
    feats = model.extract_feat(image)
    return index, feats.mean(dim=(2, 3))[0].float().cpu().numpy()


def global_features(model: torch.nn.Module, dataset,
                    size: Optional[Tuple[int, int]] = (224, 224)) -> np.ndarray:
    """Mean-pooled backbone features ``(N, C)`` of every image (sharded over ranks).

    Args:
        size: images are resized to this size first (STEGO: 224 x 224), or kept.
    """
    rank, world_size = get_dist_info()
    import torch.distributed as dist
    grouped = dist.is_available() and dist.is_initialized()
    if world_size > 1 and not grouped:
        raise RuntimeError('kNN features over several ranks need a process group: '
                           'start the tool with --launcher pytorch|slurm')
    results = run_offline_job(list(range(len(dataset))),
                              partial(_global_feature, dataset=dataset, model=model,
                                      size=size),
                              desc='global features')
    if world_size > 1:
        gathered = [None] * world_size
        dist.all_gather_object(gathered, results)
        results = [pair for part in gathered for pair in part]
    features = np.zeros((len(dataset), model.backbone.out_channels), np.float32)
    for index, vector in results:
        features[index] = vector
    return features


#: The config's ``knn_cfg`` settings and their defaults (:func:`precompute_knn`).
KNN_DEFAULTS = dict(size=(224, 224), centre=False)
#: The config's ``export`` settings and their defaults (STEGO's 4 scales + flip).
EXPORT_DEFAULTS = dict(scales=DEFAULT_SCALES, flip=True)


def precompute_knn(cfg: Config, out: str, checkpoint: Optional[str] = None,
                   num_neighbors: int = 7, chunk_size: int = 1024,
                   device: Optional[str] = None) -> Optional[np.ndarray]:
    """Write the kNN file of the training split (``docs/en/data_formats.md``).

    Settings come from ``cfg.knn_cfg`` when present: ``size`` (resize before
    pooling), ``centre`` (subtract the dataset mean before cosine, for untrained
    features). Only rank 0 writes.

    Returns:
        np.ndarray | None: ``(N, k)`` indices on rank 0, None elsewhere.
    """
    knn_cfg = dict(KNN_DEFAULTS)
    knn_cfg.update(cfg.get('knn_cfg', None) or {})
    model = build_uss_model(cfg, checkpoint, device)
    dataset = uss_image_dataset(cfg, 'train')
    size = tuple(knn_cfg['size']) if knn_cfg['size'] is not None else None
    features = torch.from_numpy(global_features(model, dataset, size))
    if get_dist_info()[0] != 0:
        return None
    if knn_cfg['centre']:
        features = centre_features(features)
    indices = cosine_topk(features, num_neighbors, chunk_size=chunk_size)
    write_knn_file(out, indices, image_stems(dataset))
    return indices


@torch.no_grad()
def _export_one(index: int, dataset, model: torch.nn.Module, out_dir: str,
                scales: Sequence[float], flip: bool, stride: int,
                what: str = 'codes', compact_bits: Optional[int] = None,
                compact_pool: int = 1) -> str:
    item = dataset[index]
    image = _normalised(model, item)
    forward = model.dense_codes if what == 'codes' else model.extract_feat
    codes = multiscale_dense(forward, image, scales, flip, stride,
                             model.feature_stride)
    # float16 first either way: a compact file is then exactly what
    # tools/uss/compact_embeddings.py makes of the lossless one
    array = codes.cpu().numpy().astype(np.float16)
    stem = stem_of(item['data_samples'].img_path)
    if compact_bits:
        path = osp.join(out_dir, stem + QUANTISED_SUFFIX)
        save_quantised_embedding(path, array, compact_pool, compact_bits)
    else:
        path = osp.join(out_dir, stem + '.npy')
        save_array(path, array)
    return path


def export_settings(cfg: Config, scales: Optional[Sequence[float]] = None,
                    flip: Optional[bool] = None) -> Tuple[Tuple[float, ...], bool]:
    """Export scales and flip: the arguments, else the config's ``export`` dict,
    else STEGO's (4 scales + flip)."""
    export = dict(EXPORT_DEFAULTS)
    export.update(cfg.get('export', None) or {})
    scales = tuple(float(s) for s in (scales if scales is not None
                                      else export['scales']))
    if not scales or not all(scale > 0 for scale in scales):
        raise ValueError(f'--scales / export.scales must be positive, got '
                         f'{list(scales)}')
    return scales, bool(export['flip'] if flip is None else flip)


def needs_training(model: torch.nn.Module, what: str) -> bool:
    """Whether exporting ``what`` from ``model`` needs a trained checkpoint: codes
    of a model with a trainable head do; frozen features and models with nothing
    to train (``DenseEmbedder``) do not."""
    if what == 'features':
        return False
    return any(p.requires_grad for p in model.parameters())


def extract_embeddings(cfg: Config, checkpoint: Optional[str], out_dir: str,
                       split: str = 'train',
                       scales: Optional[Sequence[float]] = None,
                       flip: Optional[bool] = None, stride: int = 8,
                       device: Optional[str] = None,
                       resume: bool = True,
                       what: str = 'codes',
                       compact_bits: Optional[int] = None,
                       compact_pool: int = 1) -> Dict[str, float]:
    """Write ``<out_dir>/<stem>.npy``: float16 ``(D, ceil(H/8), ceil(W/8))`` codes.

    Multi-scale and flip averaged (:func:`mars_mm.core.multiscale.multiscale_dense`),
    sharded over ranks, atomic, skipping existing files. ``what='features'`` exports
    the frozen backbone features instead of the codes (an embedding ablation).
    ``checkpoint`` may be None for a model with nothing to train (a
    ``DenseEmbedder``) or for ``what='features'``; scales and flip default to the
    config's ``export`` dict (:func:`export_settings`).

    With ``compact_bits`` (4 or 8) each image is written as
    ``<out_dir>/<stem>.q8.npz`` instead, never also as ``.npy``: the float16 array
    through :func:`mars_mm.debias.quantised.save_quantised_embedding`
    (``compact_pool`` x ``compact_pool`` cells averaged first), the same file
    ``tools/uss/compact_embeddings.py`` makes of the ``.npy``. Stage 3 reads them
    with ``debias.embedding_suffix='.q8.npz'``.

    Returns:
        dict: ``images`` written by this process, ``seconds`` spent, ``per_second``.

    The settings the files depend on (checkpoint and config digests, split,
    scales, flip, stride, ``what``) are recorded in ``<out_dir>/job_settings.json``;
    a rerun with other settings into the same folder is refused.

    Raises:
        ValueError: a trainable model (STEGO) without its checkpoint, or
            ``out_dir`` made with other settings.
    """
    if what not in ('codes', 'features'):
        raise ValueError(f"what must be 'codes' or 'features', got {what!r}")
    if compact_bits not in (None, 4, 8):
        raise ValueError(f'compact_bits must be 4 or 8, got {compact_bits}')
    if int(compact_pool) < 1:
        raise ValueError(f'compact_pool must be >= 1, got {compact_pool}')
    suffix = QUANTISED_SUFFIX if compact_bits else '.npy'
    check_output_dir(out_dir)  # before the model is built
    scales, flip = export_settings(cfg, scales, flip)
    model = build_uss_model(cfg, checkpoint, device)
    if checkpoint is None and needs_training(model, what):
        raise ValueError(f'{type(model).__name__} has trainable parts (a STEGO '
                         'head): give its trained checkpoint, or export the frozen '
                         'backbone features with --what features')
    dataset = uss_image_dataset(cfg, split)
    stems = image_stems(dataset)
    if len(set(stems)) != len(stems):
        raise ValueError(f'the {split} split has duplicate image names; embedding '
                         'files are named by image stem')
    make_output_dir(out_dir)
    pipeline = cfg.get('uss_image_pipeline', None) or DEFAULT_IMAGE_PIPELINE
    settings = dict(
        job='extract_features', checkpoint=file_digest(checkpoint),
        config=digest(dict(model=cfg.model, pipeline=pipeline)), split=split,
        scales=list(scales), flip=bool(flip), stride=int(stride), what=what)
    if compact_bits:  # recorded only then: lossless folders keep their record
        settings['compact'] = dict(bits=int(compact_bits), pool=int(compact_pool))
    check_job_settings(out_dir, settings,
                       outputs=lambda name: name.endswith(suffix))
    start = time.perf_counter()
    done = run_offline_job(
        list(range(len(dataset))),
        partial(_export_one, dataset=dataset, model=model, out_dir=out_dir,
                scales=tuple(scales), flip=flip, stride=stride, what=what,
                compact_bits=compact_bits, compact_pool=int(compact_pool)),
        output_path=lambda index: osp.join(out_dir, stems[index] + suffix),
        desc=f'embeddings ({split})', resume=resume)
    seconds = time.perf_counter() - start
    return dict(images=len(done), seconds=seconds,
                per_second=len(done) / seconds if seconds > 0 else float('nan'))


def evaluate_uss(cfg: Config, checkpoint: str, split: str = 'test') -> dict:
    """Hungarian-matched cluster mIoU / pixel accuracy (and linear probe) of a
    checkpoint on ``cfg.<split>_dataloader``, through an mmengine Runner."""
    from mmengine.runner import Runner
    cfg = copy.deepcopy(cfg)
    if split != 'test':
        cfg.test_dataloader = cfg[f'{split}_dataloader']
    num_clusters = cfg.model.cluster_probe.num_clusters
    cfg.test_evaluator = dict(type='USSMetric', num_clusters=num_clusters)
    cfg.load_from = checkpoint
    for key in ('train_dataloader', 'train_cfg', 'optim_wrapper', 'param_scheduler',
                'val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg.pop(key, None)
    drop_save_best_for_testing(cfg)
    runner = Runner.from_cfg(cfg)
    return runner.test()


def context_separation(emb_dir: str, dataset, context_dir: str,
                       class_ids: Sequence[int]) -> Dict[int, Dict[str, float]]:
    """How well embeddings separate planted context from the class it co-occurs
    with (the property MARS relies on), on the planted-bias dataset.

    For a biased class ``c``: *context with c* are context pixels (``context_dir``
    mask 1, ground truth background) of images containing ``c``; *context elsewhere*
    the same in images without ``c``; *object* the pixels of ``c``. Labels are
    resized to the embedding grid as Stage 3 resizes them (pixel-centre nearest,
    :func:`mars_mm.core.debias.resize_label_to_grid`).

    Returns:
        dict: per class id, ``cos_context_elsewhere`` and ``cos_object`` (mean
        cosine of context-with-c pixels to each set), their ``gap``, and
        ``closer_to_context``: the fraction of context-with-c pixels whose mean
        cosine to context elsewhere exceeds that to the object.
    """
    from mars_mm.core.uss_eval import SetCosine
    per_image = []
    stats = None
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        stem = stem_of(info['img_path'])
        path = osp.join(emb_dir, stem + '.npy')
        if not osp.isfile(path):
            raise FileNotFoundError(f'embedding missing for {stem}: {path}')
        emb = np.load(path).astype(np.float32)
        grid = emb.shape[1:]
        gt = resize_label_to_grid(load_label_png(info['seg_map_path']), grid)
        context = resize_label_to_grid(
            load_label_png(osp.join(context_dir, stem + '.png')), grid)
        vectors = emb.reshape(emb.shape[0], -1).T
        stats = stats or SetCosine(emb.shape[0])
        context_bg = ((context > 0) & (gt == 0)).ravel()
        for cls in class_ids:
            present = bool((gt == cls).any())
            if present:
                stats.add(f'{cls}/with', vectors[context_bg])
                stats.add(f'{cls}/object', vectors[(gt == cls).ravel()])
            else:
                stats.add(f'{cls}/elsewhere', vectors[context_bg])
        per_image.append((vectors, context_bg, gt.ravel()))
    results = {}
    for cls in class_ids:
        towards_context = stats.mean_direction(f'{cls}/elsewhere')
        towards_object = stats.mean_direction(f'{cls}/object')
        closer, total = 0, 0
        for vectors, context_bg, gt in per_image:
            if not (gt == cls).any():
                continue
            chosen = vectors[context_bg]
            unit = chosen / np.maximum(np.linalg.norm(chosen, axis=1, keepdims=True),
                                       1e-12)
            closer += int((unit @ towards_context > unit @ towards_object).sum())
            total += len(unit)
        elsewhere = stats.mean_cosine(f'{cls}/with', f'{cls}/elsewhere')
        obj = stats.mean_cosine(f'{cls}/with', f'{cls}/object')
        results[cls] = dict(cos_context_elsewhere=elsewhere, cos_object=obj,
                            gap=elsewhere - obj,
                            closer_to_context=closer / total if total else np.nan,
                            context_pixels=total)
    return results
