"""Whether Stage 3's files still match their inputs, and clean-up after kills.

Resuming skips the outputs that exist; these functions decide whether an
existing output was made from the current inputs. Each per-image centroid file
of pass 1 records the size and modification time of its pseudo label and
embedding (:func:`image_inputs`); the dataset mean records a digest of every
embedding's (:func:`embedding_inputs`); the labels of pass 2 are deleted when
what they depend on changed (:func:`invalidate_pass2`). A merge killed midway
leaves temporaries that :func:`remove_merge_leftovers` removes.
"""
import glob
import json
import os
import os.path as osp
import warnings
from typing import Dict, List, Optional, Sequence

import numpy as np

from mars_mm.debias.formats import image_centroid_inputs
from mars_mm.debias.settings import DebiasSettings, Sample
from mars_mm.utils.io import save_text
from mars_mm.utils.offline import digest, file_fingerprint, read_job_settings


def embedding_inputs(samples: Sequence[Sample], settings: DebiasSettings) -> str:
    """Digest of every embedding's (size, modification time): changes whenever
    an embedding file is rewritten."""
    return digest([(sample.stem,) + file_fingerprint(settings.embedding_path(
        sample.stem)) for sample in samples if osp.isfile(
            settings.embedding_path(sample.stem))])


def mean_ready(settings: DebiasSettings, inputs: str) -> bool:
    record = read_job_settings(settings.work_dir, 'embedding_mean.json')
    return osp.exists(settings.mean_file) and record == dict(inputs=inputs)


def image_inputs(sample: Sample, settings: DebiasSettings) -> List[int]:
    """Fingerprint of the files a per-image centroid file is made from: size and
    modification time (ns) of the pseudo label and of the embedding."""
    return list(file_fingerprint(settings.label_path(sample.stem))
                + file_fingerprint(settings.embedding_path(sample.stem)))


def pass1_state(sample: Sample, settings: DebiasSettings) -> Optional[str]:
    """None if the image's centroid file is done, else why it must be (re)made."""
    path = settings.image_centroid_path(sample.stem)
    if not osp.exists(path):
        return 'missing'
    try:
        recorded = image_centroid_inputs(path)
    except ValueError as err:
        return str(err)
    try:
        current = image_inputs(sample, settings)
    except FileNotFoundError:
        return None  # the input is gone: computing will name it
    if recorded is None or recorded.tolist() != current:
        return (f'{path} was made from other inputs (the pseudo label or the '
                'embedding changed since)')
    return None


def pass1_ready(path: str, samples_by_path: Dict[str, Sample],
                settings: DebiasSettings) -> bool:
    """Whether another rank's centroid file is done (not a stale earlier one)."""
    return pass1_state(samples_by_path[path], settings) is None


def remove_merge_leftovers(settings: DebiasSettings) -> int:
    """Temporaries a merge killed midway left in the work dir (rank 0, while the
    other ranks wait for the merge)."""
    leftovers = glob.glob(osp.join(settings.work_dir, '.tmp-*'))
    if osp.exists(settings.vector_file + '.raw'):
        leftovers.append(settings.vector_file + '.raw')
    for path in leftovers:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
    if leftovers:
        # worth a word: it means the previous run was killed in the merge
        warnings.warn(f'debias merge: removed {len(leftovers)} temporary files a '
                      f'killed merge left in {settings.work_dir} ('
                      f'{", ".join(sorted(osp.basename(p) for p in leftovers))})',
                      stacklevel=2)
    return len(leftovers)


def pass2_inputs(stems: Sequence[str], settings: DebiasSettings,
                 arrays: Dict[str, np.ndarray]) -> dict:
    """What the debiased labels depend on: the centroids, the refinement and tag
    settings, and the fingerprint of every image's files."""
    files = []
    for stem in stems:
        entry = [stem]
        for path in (settings.label_path(stem), settings.embedding_path(stem)):
            entry += list(file_fingerprint(path)) if osp.exists(path) else [None]
        files.append(entry)
    centroids = digest([arrays[key].tolist() for key in (
        'debiased', 'debiased_valid', 'embedding_mean')])
    return dict(centroids=centroids, refinement=settings.refinement,
                tag_source=settings.tag_source, num_classes=settings.num_classes,
                files=digest(files))


def invalidate_pass2(stems: Sequence[str], settings: DebiasSettings,
                     arrays: Dict[str, np.ndarray]) -> int:
    """Delete the debiased labels of an earlier run made from other inputs.

    Returns:
        int: the number of labels deleted (a warning says so).
    """
    record = osp.join(settings.work_dir, 'pass2_inputs.json')
    current = json.loads(json.dumps(pass2_inputs(stems, settings, arrays),
                                    sort_keys=True, default=str))
    previous = read_job_settings(settings.work_dir, 'pass2_inputs.json')
    label_dir = osp.dirname(settings.output_label_path('x'))
    labels = glob.glob(osp.join(label_dir, '*' + osp.splitext(
        settings.output_label_path('x'))[1]))
    removed = 0
    if previous != current and labels:
        changed = sorted(key for key in set(current) | set(previous or {})
                         if (previous or {}).get(key) != current.get(key))
        for path in labels:
            os.remove(path)
            removed += 1
        warnings.warn(
            f'debias pass 2: {removed} labels in {label_dir} were made from other '
            f'inputs ({", ".join(changed)} changed since, {record}): deleted, they '
            'are made again', stacklevel=2)
    if previous != current:
        save_text(record, json.dumps(current, indent=1, sort_keys=True) + '\n')
    return removed
