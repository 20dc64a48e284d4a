"""MARS Stage 3 from a config: the entry point of ``tools/mars/debias.py``.

Builds the split from the config's dataset (the only step that needs the registry)
and runs :func:`mars_mm.debias.debias_pseudo_labels`. Stage 3 itself (settings,
passes, files, report, analysis) lives in :mod:`mars_mm.debias`.
"""
import copy
from typing import Any, List, Tuple

from mars_mm.apis.splits import split_dataloader_key
from mars_mm.debias import (
    DebiasSettings,
    Sample,
    bias_report,
    debias_pseudo_labels,
    samples_from_dataset,
    settings_from_config,
)
from mars_mm.registry import DATASETS
from mars_mm.utils.offline import get_dist_info

__all__ = ['build_samples', 'debias_from_config']


def build_samples(cfg: Any) -> Tuple[List[Sample], List[str]]:
    """The split to debias, from the config's dataset.

    ``cfg.debias.dataset`` if given, else ``cfg.train_infer_dataloader.dataset``
    (the train split without augmentation), else ``cfg.train_dataloader.dataset``.
    The pipeline is dropped: only the file list and the tags are needed.

    Returns:
        tuple: (list of :class:`~mars_mm.debias.Sample`, class names with background
        first).
    """
    dataset_cfg = cfg.debias.get('dataset', None)
    if dataset_cfg is None:
        try:
            dataset_cfg = cfg[split_dataloader_key(cfg, 'train')]['dataset']
        except KeyError as err:
            raise ValueError('the config names no dataset: set debias.dataset or '
                             'train_infer_dataloader.dataset') from err
    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg['pipeline'] = []
    dataset_cfg['lazy_init'] = False
    dataset = DATASETS.build(dataset_cfg)
    return samples_from_dataset(dataset), list(dataset.metainfo['classes'])


def debias_from_config(cfg: Any, resume: bool = True, report: bool = True,
                       report_only: bool = False) -> DebiasSettings:
    """Everything ``tools/mars/debias.py`` does after parsing its arguments.

    Args:
        cfg: the loaded config (``debias`` dict, dataset, ``work_dir``).
        resume: keep the finished per-image outputs of a killed run.
        report: write the bias report at the end.
        report_only: only (re)write the report of a finished run.

    Returns:
        DebiasSettings: the settings the job ran with.
    """
    samples, class_names = build_samples(cfg)
    settings = settings_from_config(cfg, class_names)
    if report_only:
        if get_dist_info()[0] == 0:
            bias_report(samples, settings)
    else:
        debias_pseudo_labels(samples, settings, resume=resume, report=report)
    return settings
