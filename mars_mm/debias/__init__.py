"""MARS Stage 3 as an offline job: settings, passes, files, report and analysis.

The maths are in :mod:`mars_mm.core.debias` (and the CRF in :mod:`mars_mm.core.refine`);
this package reads and writes the files and runs the passes over a split.
"""
from .analysis import (
                       evaluate_debiasing,
                       map_separability,
                       oracle_biased_label,
                       oracle_embedding,
                       rank_auc,
                       removal_counts,
)
from .formats import (
                       load_centroid_file,
                       load_embedding,
                       load_pseudo_label,
                       load_rgb,
                       read_npy_chunks,
)
from .job import debias_pseudo_labels
from .passes import (
                       centroids_of_image,
                       compute_centroids,
                       debias_sample,
                       embedding_mean,
                       merge_centroids,
                       resolve_tags,
                       write_debiased_labels,
)
from .report import bias_report, removal_stats
from .settings import (
                       CENTRING,
                       DebiasSettings,
                       Sample,
                       samples_from_dataset,
                       settings_from_config,
)
from .sync import wait_for_files

__all__ = [
    'CENTRING', 'DebiasSettings', 'Sample', 'bias_report', 'centroids_of_image',
    'compute_centroids', 'debias_pseudo_labels', 'debias_sample', 'embedding_mean',
    'evaluate_debiasing', 'load_centroid_file', 'load_embedding', 'load_pseudo_label',
    'load_rgb', 'map_separability', 'merge_centroids', 'oracle_biased_label',
    'oracle_embedding', 'rank_auc', 'read_npy_chunks', 'removal_counts',
    'removal_stats', 'resolve_tags', 'samples_from_dataset', 'settings_from_config',
    'wait_for_files', 'write_debiased_labels'
]
