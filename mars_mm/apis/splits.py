"""The image list of a config's split, for the offline stages.

Every offline stage (CAM export, pseudo labels, label scoring, debiasing) reads the
same split the same way: the dataset of the split's dataloader in the config, built
with another pipeline (often none: only the file list and the tags are needed).
"""
import copy
import os.path as osp
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


def _plain_datasets(dataset_cfg) -> List[dict]:
    """The dataset configs inside wrappers (``dataset=``, ``datasets=``)."""
    if not isinstance(dataset_cfg, dict):
        return []
    if 'datasets' in dataset_cfg:
        return [cfg for sub in dataset_cfg['datasets'] for cfg in _plain_datasets(sub)]
    if 'dataset' in dataset_cfg:
        return _plain_datasets(dataset_cfg['dataset'])
    return [dataset_cfg]


def split_image_paths(cfg: Config, key: str) -> Dict[str, str]:
    """``{image path: split file}`` of a dataloader's datasets, from their split
    files alone (datasets built with ``lazy_init``: no image is opened)."""
    from mars_mm.datasets.wsss_base import WSSSBaseDataset
    from mars_mm.registry import DATASETS
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    paths: Dict[str, str] = {}
    for dataset_cfg in _plain_datasets((cfg.get(key) or {}).get('dataset')):
        kind = dataset_cfg.get('type')
        kind = DATASETS.get(kind) if isinstance(kind, str) else kind
        if not (isinstance(kind, type) and issubclass(kind, WSSSBaseDataset)):
            continue  # another library's dataset: its lists are its own
        dataset = DATASETS.build(dict(copy.deepcopy(dataset_cfg), pipeline=[],
                                      lazy_init=True))
        img_dir = dataset.data_prefix.get('img_path', '')
        source = dataset.ann_file or getattr(dataset, 'tags_path', '')
        for stem in dataset.list_stems():
            path = osp.normpath(osp.abspath(osp.join(img_dir,
                                                     stem + dataset.img_suffix)))
            paths.setdefault(path, source)
    return paths


def check_disjoint_splits(cfg: Config) -> None:
    """Refuse a training split that holds images of the validation split.

    A name that resolves to another split's image (``000017.jpg`` in
    ``train.txt`` while ``val.txt`` lists ``000017``, or the same name in both)
    means the model is validated on images it trained on; the scores would look
    better than they are. One split file (or tags file) read by both dataloaders
    is a deliberate choice and passes. Only split files are read.

    Raises:
        ValueError: naming both split files and examples of the shared images.
    """
    if cfg.get('val_dataloader', None) is None or not cfg.get('val_cfg', None):
        return
    train = split_image_paths(cfg, 'train_dataloader')
    if not train:
        return
    val = split_image_paths(cfg, 'val_dataloader')
    # the same list for both (validating on the training split) is deliberate
    shared = sorted(path for path in set(train) & set(val)
                    if osp.abspath(train[path]) != osp.abspath(val[path]))
    if shared:
        examples = ', '.join(osp.basename(path) for path in shared[:3])
        raise ValueError(
            f'{train[shared[0]]} (train_dataloader) and {val[shared[0]]} '
            f'(val_dataloader) share {len(shared)} images (e.g. {examples}): the '
            'model would be validated on images it trained on; list each image in '
            'one split only')
