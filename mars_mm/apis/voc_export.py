"""PASCAL VOC 2012 test-server export: palette PNGs at original size, then tar.gz.

The evaluation server expects ``results/VOC2012/Segmentation/comp6_test_cls/<id>.png``
(``comp6``: trained with data beyond VOC, e.g. SBD) holding class indices 0..20 at
the original image size, packed in one archive.
"""
import copy
import os
import os.path as osp
import tarfile
from typing import Any, List, Optional

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mars_mm.apis.launch import tta_model_cfg
from mars_mm.registry import DATASETS, MODELS
from mars_mm.utils.io import (
    atomic_write,
    check_output_dir,
    make_output_dir,
    save_label_png,
    stem_of,
)
from mars_mm.utils.offline import (
    barrier,
    default_device,
    get_dist_info,
    run_offline_job,
)

VOC_RESULT_DIR = osp.join('results', 'VOC2012', 'Segmentation', 'comp6_test_cls')
#: Transforms that need ground truth, which the test split does not have.
_ANNOTATION_TRANSFORMS = ('LoadAnnotations', 'LoadCheckedAnnotations',
                          'LoadImageTags', 'LoadPseudoLabel')


def strip_annotation_transforms(pipeline: List[dict]) -> List[dict]:
    """A copy of ``pipeline`` (also inside ``TestTimeAug``) without GT loaders."""
    stripped = []
    for transform in copy.deepcopy(list(pipeline)):
        if transform.get('type') in _ANNOTATION_TRANSFORMS:
            continue
        if transform.get('type') == 'TestTimeAug':
            groups = []
            for group in transform['transforms']:
                group = [step for step in group
                         if step.get('type') not in _ANNOTATION_TRANSFORMS]
                if group:
                    groups.append(group)
            transform['transforms'] = groups
        stripped.append(transform)
    return stripped


def build_predictor(cfg: Config, checkpoint: str, tta: bool = False,
                    device: Optional[str] = None) -> torch.nn.Module:
    """The student segmentor from ``checkpoint`` (``init_model``), TTA-wrapped if asked.

    Args:
        cfg: the training/test config.
        checkpoint: a checkpoint saved by training (student weights).
        tta: wrap it in the config's ``tta_model`` (multi-scale + flip, CRF if set).
        device: default :func:`~mars_mm.utils.offline.default_device`.

    Returns:
        nn.Module: a model in eval mode with ``test_step``.
    """
    from mmseg.apis import init_model
    model = init_model(copy.deepcopy(cfg), checkpoint, device=default_device(device))
    if tta:
        model = MODELS.build(tta_model_cfg(cfg, model))
    return model.eval()


def export_voc_test(cfg: Config, checkpoint: str, out_dir: str, tta: bool = False,
                    device: Optional[str] = None, resume: bool = True,
                    dataloader_key: str = 'test_server_dataloader') -> Optional[str]:
    """Predict the VOC test split and pack the server archive.

    Images are sharded over ranks (``run_offline_job``: atomic writes, resume,
    progress bar); rank 0 packs the archive after all ranks finish.

    Args:
        cfg: config with a ``test_server_dataloader`` (the test images; no masks).
        checkpoint: the trained checkpoint.
        out_dir: receives ``results/VOC2012/Segmentation/comp6_test_cls/*.png`` and
            ``results.tar.gz``.
        tta: use the config's ``tta_model``/``tta_pipeline`` (annotation loaders
            are removed from the pipeline).
        device: inference device.
        resume: keep PNGs that already exist.
        dataloader_key: the config entry describing the test split.

    Returns:
        str: path of the ``.tar.gz`` on rank 0, None on other ranks.

    Raises:
        KeyError: the config has no ``dataloader_key``.
        ValueError: a prediction has values outside 0..255 or a wrong size.
    """
    if dataloader_key not in cfg:
        raise KeyError(f'the config has no `{dataloader_key}` describing the test '
                       'images (see configs/_base_/datasets/voc12aug_wsss.py)')
    check_output_dir(out_dir)
    model = build_predictor(cfg, checkpoint, tta=tta, device=device)
    dataset_cfg = copy.deepcopy(cfg[dataloader_key]['dataset'])
    pipeline = cfg.tta_pipeline if tta else dataset_cfg['pipeline']
    dataset_cfg['pipeline'] = strip_annotation_transforms(pipeline)
    dataset = DATASETS.build(dataset_cfg)
    result_dir = osp.join(out_dir, VOC_RESULT_DIR)
    make_output_dir(result_dir)

    def png_path(index: int) -> str:
        stem = stem_of(dataset.get_data_info(index)['img_path'])
        return osp.join(result_dir, f'{stem}.png')

    def predict(index: int) -> Any:
        data = dataset[index]
        with torch.no_grad():
            sample = model.test_step(pseudo_collate([data]))[0]
        pred = sample.pred_sem_seg.data.squeeze(0).cpu().numpy()
        ori_shape = tuple(sample.metainfo['ori_shape'][:2])
        if pred.shape != ori_shape:
            raise ValueError(f'{png_path(index)}: prediction {pred.shape} is not at '
                             f'the original size {ori_shape}')
        save_label_png(png_path(index), pred.astype(np.uint8))

    run_offline_job(list(range(len(dataset))), predict, output_path=png_path,
                    desc='VOC test export', resume=resume)
    barrier()
    rank, _ = get_dist_info()
    if rank != 0:
        return None
    return pack_results(out_dir)


def pack_results(out_dir: str) -> str:
    """Pack ``out_dir/results/...`` into ``out_dir/results.tar.gz`` (server layout)."""
    result_dir = osp.join(out_dir, VOC_RESULT_DIR)
    names = sorted(name for name in os.listdir(result_dir) if name.endswith('.png')
                   and not name.startswith('.tmp-'))
    if not names:
        raise FileNotFoundError(f'no PNG predictions in {result_dir}')
    archive = osp.join(out_dir, 'results.tar.gz')
    with atomic_write(archive, suffix='.tar.gz') as tmp:
        with tarfile.open(tmp, 'w:gz') as tar:
            for name in names:
                tar.add(osp.join(result_dir, name),
                        arcname=osp.join(VOC_RESULT_DIR, name))
    return archive
