"""Stage 1 in one job: CAMs -> pseudo labels without writing the CAM files.

``generate_cams`` + ``make_pseudo_labels`` store every image's CAMs (float16, one map
per tag class at image size): about 64 GB for COCO train. The pseudo labels are all
that later stages read, so this job computes each image's CAMs, rounds them to
float16 exactly as a stored CAM file would, and turns them into the pseudo label
at once: the labels are identical to the two-job path's, and nothing but the PNGs
is written. The two-job path stays the way to keep CAMs (CAM evaluation, sweeps).
"""
import dataclasses
import os.path as osp
from functools import partial
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config

from mars_mm.apis.cam import (
    DEFAULT_CAM_PIPELINE,
    _cam_model_config,
    build_cam_model,
    cam_function,
    check_scales,
    preprocessed_item,
)
from mars_mm.apis.splits import build_split_dataset, dataset_files
from mars_mm.core.cam import cams_to_label, image_cams
from mars_mm.core.crf import CRFParams
from mars_mm.core.multiscale import DEFAULT_SCALES
from mars_mm.utils.io import (
    check_output_dir,
    make_output_dir,
    read_rgb,
    save_label_png,
    stem_of,
)
from mars_mm.utils.offline import (
    check_job_settings,
    digest,
    file_digest,
    run_offline_job,
)


def _label_one(index: int, dataset, model, cam_fn, out_dir: str,
               scales: Sequence[float], flip: bool, max_batch: Optional[int],
               bg_power: Optional[float], bg_threshold: Optional[float],
               crf_params: Optional[CRFParams]) -> str:
    batch, sample, tags = preprocessed_item(dataset, index, model)
    tags = sorted(tags)
    with torch.inference_mode():
        cams = image_cams(cam_fn, batch['inputs'][0], tags, scales, flip, max_batch)
    # the float16 rounding of a stored CAM file: labels equal the two-job path's
    cams = cams.cpu().numpy().astype(np.float16).astype(np.float32)
    img_path = sample.metainfo['img_path']
    image = read_rgb(img_path) if crf_params is not None else None
    label = cams_to_label(cams, np.asarray(tags, np.int64), image=image,
                          bg_power=bg_power, bg_threshold=bg_threshold,
                          crf_params=crf_params)
    path = osp.join(out_dir, stem_of(img_path) + '.png')
    save_label_png(path, label)
    return path


def generate_pseudo_labels(config: Config, checkpoint: Optional[str], out_dir: str,
                           split: str = 'train',
                           scales: Sequence[float] = DEFAULT_SCALES,
                           flip: bool = True, max_batch: Optional[int] = None,
                           bg_power: Optional[float] = 2.0,
                           bg_threshold: Optional[float] = None, crf: bool = True,
                           crf_params: CRFParams = CRFParams(),
                           device: Optional[str] = None, resume: bool = True,
                           fast_inference: bool = True) -> int:
    """Write ``<out_dir>/<stem>.png`` pseudo labels straight from the classifier.

    Equivalent to :func:`mars_mm.apis.cam.generate_cams` followed by
    :func:`mars_mm.apis.cam.make_pseudo_labels` with the same arguments (same
    labels, byte for byte), without the CAM folder. Images are sharded over ranks
    and skipped on rerun when their PNG exists; the settings are recorded in
    ``<out_dir>/job_settings.json`` and a rerun with other settings is refused.

    Args:
        config: the classifier's config (``cam_pipeline`` reads the images).
        checkpoint: trained weights (``None`` keeps the initialisation, for tests).
        out_dir: output folder of ``<stem>.png``.
        split: which ``<split>_dataloader`` dataset to label.
        scales, flip, max_batch: multi-scale CAM settings.
        bg_power, bg_threshold: background rule; a threshold overrides the power.
        crf: refine with the dense CRF (background + the image's classes).
        crf_params: CRF parameters.
        device: ``cuda``/``cpu``; default CUDA when available.
        resume: skip images whose PNG exists.
        fast_inference: fold BN and use channels-last.

    Returns:
        int: number of labels written by this process.
    """
    check_output_dir(out_dir)  # before the model is built
    scales = check_scales(scales)
    model = build_cam_model(config, checkpoint, device)
    pipeline = config.get('cam_pipeline', None) or DEFAULT_CAM_PIPELINE
    dataset = build_split_dataset(config, split, pipeline)
    classes = list(dataset.metainfo['classes'])
    stems = [item['stem'] for item in dataset_files(dataset)]
    if len(set(stems)) != len(stems):
        raise ValueError(f'the {split} split has duplicate image names; labels are '
                         'named by image stem')
    make_output_dir(out_dir)
    bg_power = None if bg_threshold is not None else bg_power
    check_job_settings(out_dir, dict(
        job='generate_pseudo_labels', checkpoint=file_digest(checkpoint),
        config=digest(dict(model=_cam_model_config(config), pipeline=pipeline)),
        split=split, classes=classes, scales=list(scales), flip=bool(flip),
        fast_inference=bool(fast_inference), bg_power=bg_power,
        bg_threshold=bg_threshold,
        crf=dataclasses.asdict(crf_params) if crf else None),
        outputs=lambda name: name.endswith('.png'))
    cam_fn = cam_function(model, channels_last=fast_inference, fuse_bn=fast_inference)
    process = partial(_label_one, dataset=dataset, model=model, cam_fn=cam_fn,
                      out_dir=out_dir, scales=tuple(scales), flip=flip,
                      max_batch=max_batch, bg_power=bg_power,
                      bg_threshold=bg_threshold,
                      crf_params=crf_params if crf else None)
    done = run_offline_job(
        list(range(len(dataset))), process,
        output_path=lambda index: osp.join(out_dir, stems[index] + '.png'),
        num_workers=0, desc=f'pseudo labels from CAMs ({split})', resume=resume)
    return len(done)
