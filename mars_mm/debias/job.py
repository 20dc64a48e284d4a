"""Stage 3 as one streaming offline job: every pass in order, then the report.

Each rank calls :func:`debias_pseudo_labels` with the same samples; the passes of
:mod:`mars_mm.debias.passes` shard the images over ranks and resume a killed run, and
:func:`mars_mm.debias.sync.sync_after` holds every rank until a pass's files exist.
"""
import os
import time
from typing import Sequence

from mars_mm.debias.freshness import pass1_ready
from mars_mm.debias.passes import (
    compute_centroids,
    embedding_mean,
    merge_centroids,
    write_debiased_labels,
)
from mars_mm.debias.report import bias_report
from mars_mm.debias.settings import DebiasSettings, Sample
from mars_mm.debias.sync import sync_after
from mars_mm.utils.offline import get_dist_info


def debias_pseudo_labels(samples: Sequence[Sample], settings: DebiasSettings,
                         resume: bool = True, report: bool = True) -> None:
    """Run all passes (each rank calls this with the same samples).

    Args:
        samples: the split.
        settings: Stage 3 settings.
        resume: keep finished per-image outputs of an earlier (killed) run.
        report: write the bias report at the end (rank 0).
    """
    samples = list(samples)
    if not samples:
        raise ValueError('no image to debias')
    stems = [sample.stem for sample in samples]
    if len(set(stems)) != len(stems):
        raise ValueError('image stems are not unique: outputs would collide')
    os.makedirs(settings.work_dir, exist_ok=True)
    rank, _ = get_dist_info()
    mean = embedding_mean(samples, settings) if settings.centring == 'dataset' \
        else None
    compute_centroids(samples, settings, mean, resume=resume)
    started = time.time()
    by_path = {settings.image_centroid_path(sample.stem): sample
               for sample in samples}
    sync_after(list(by_path), ready=lambda path: pass1_ready(path, by_path,
                                                             settings))
    if rank == 0:
        merge_centroids(stems, settings, mean)
    # (1 s of slack: file times use a coarser clock than time.time())
    sync_after([settings.centroid_file], newer_than=started - 1.0)
    write_debiased_labels(samples, settings, resume=resume)
    sync_after([settings.output_label_path(stem) for stem in stems])
    if report and rank == 0 and settings.report['enabled']:
        bias_report(samples, settings)
