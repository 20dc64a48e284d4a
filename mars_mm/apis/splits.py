"""The image list of a config's split, for the offline stages.

Every offline stage (CAM export, pseudo labels, label scoring, debiasing) reads the
same split the same way: the dataset of the split's dataloader in the config, built
with another pipeline (often none: only the file list and the tags are needed).
"""
import copy
from typing import Dict, List, Optional

from mmengine.config import Config
from mmengine.registry import init_default_scope

from mars_mm.utils.io import stem_of


def split_dataloader_key(cfg: Config, split: str = 'train') -> str:
    """Config key of a split's dataloader.

    For ``train`` the augmentation-free ``train_infer_dataloader`` of the dataset
    bases is preferred (CAM export, pseudo labels, debiasing and scoring must see
    whole images, and every image); other splits use ``<split>_dataloader``.

    Raises:
        KeyError: naming the key when the config has no such dataloader.
    """
    if split == 'train' and cfg.get('train_infer_dataloader', None) is not None:
        return 'train_infer_dataloader'
    key = f'{split}_dataloader'
    if cfg.get(key, None) is None:
        raise KeyError(f'the config has no `{key}`; choose another --split')
    return key


def replace_pipeline(dataset_cfg: dict, pipeline: list) -> dict:
    """A copy of a dataset config with ``pipeline``, recursing into wrappers."""
    dataset_cfg = copy.deepcopy(dataset_cfg)
    if 'datasets' in dataset_cfg:
        dataset_cfg['datasets'] = [replace_pipeline(sub, pipeline)
                                   for sub in dataset_cfg['datasets']]
    elif 'dataset' in dataset_cfg:
        dataset_cfg['dataset'] = replace_pipeline(dataset_cfg['dataset'], pipeline)
    else:
        dataset_cfg['pipeline'] = copy.deepcopy(pipeline)
    return dataset_cfg


def build_split_dataset(cfg: Config, split: str = 'train',
                        pipeline: Optional[list] = None):
    """The dataset of a split (see :func:`split_dataloader_key`), another pipeline.

    Args:
        cfg: a full or dataset-only config with the dataloaders.
        split: ``train``, ``val`` or ``test``.
        pipeline: replaces the split's pipeline (``[]``: only the file lists are
            needed).
    """
    from mars_mm.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    dataset_cfg = cfg[split_dataloader_key(cfg, split)]['dataset']
    if pipeline is not None:
        dataset_cfg = replace_pipeline(dataset_cfg, pipeline)
    return DATASETS.build(dataset_cfg)


def dataset_files(dataset) -> List[Dict[str, str]]:
    """``stem``, ``img_path``, ``seg_map_path`` (maybe None) of every sample."""
    files = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        files.append(dict(stem=stem_of(info['img_path']), img_path=info['img_path'],
                          seg_map_path=info.get('seg_map_path')))
    return files
