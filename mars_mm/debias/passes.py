"""The passes of Stage 3 over a split of N images, each sharded over ranks.

* pass 0, :func:`embedding_mean` (only with ``centring='dataset'``): the dataset
  mean of the raw embeddings, from per-rank running sums (``<work>/embedding_sum/``)
  merged into ``<work>/embedding_mean.npy``;
* pass 1, :func:`compute_centroids`: one image at a time, k-means per class (step 1);
  one small file per image ``<work>/centroids/<stem>.npz`` (atomic, so a killed run
  resumes where it stopped);
* the merge, :func:`merge_centroids` (rank 0): steps 2-3 streamed over the per-image
  files into ``centroid_vectors.npy`` and the summary ``centroids.npz``. Memory stays
  O(N K) scalars plus one chunk of vectors, whatever N;
* pass 2, :func:`write_debiased_labels`: steps 4-6 with a worker pool into
  ``<work>/labels/`` through :func:`mars_mm.utils.offline.run_offline_job` (sharded,
  atomic, resumable).

Resuming never reuses an output made from other inputs: the settings of pass 1
are recorded (``pass1_params.json``; other settings are refused), each per-image
centroid file records the size and modification time of the pseudo label and
embedding it was made from and is recomputed (with a warning) when they changed,
the mean and its per-rank sums carry a digest of the embeddings' fingerprints, and
the labels of pass 2 are deleted and remade (with a warning) when the centroids,
the refinement or any image's inputs changed (``pass2_inputs.json``). The merge
starts by removing the temporaries a killed merge left in the work dir. Those
checks live in :mod:`mars_mm.debias.freshness`.

The maths are the plain functions of :mod:`mars_mm.core.debias`; the files are those
of :mod:`mars_mm.debias.formats`; :mod:`mars_mm.debias.job` runs the passes in order.
"""
import glob
import json
import os
import os.path as osp
import warnings
from functools import partial
from typing import Dict, Optional, Sequence

import numpy as np
import torch

from mars_mm.core import debias as core
from mars_mm.debias.formats import (
    load_centroid_file,
    load_embedding,
    load_image_centroids,
    load_pseudo_label,
    load_rgb,
    npy_from_raw,
    read_npy_chunks,
    save_centroid_file,
    save_image_centroids,
)
from mars_mm.debias.freshness import (
    embedding_inputs,
    image_inputs,
    invalidate_pass2,
    mean_ready,
    pass1_state,
    remove_merge_leftovers,
)
from mars_mm.debias.settings import DebiasSettings, Sample
from mars_mm.debias.sync import sync_after
from mars_mm.utils.io import (
    atomic_write,
    image_size,
    load_label_png,
    save_label_png,
    save_text,
    save_with,
)
from mars_mm.utils.offline import (
    check_job_settings,
    get_dist_info,
    run_offline_job,
)


def resolve_tags(sample: Sample, label: np.ndarray, tag_source: str,
                 num_classes: int) -> np.ndarray:
    """The image-level classes ``C_I`` of a sample.

    Args:
        sample: the image (its ``tags`` and ``gt_path``).
        label: ``(H, W)`` its baseline pseudo label.
        tag_source: one of :data:`mars_mm.core.debias.TAG_SOURCES`.
        num_classes: C + 1.

    Returns:
        np.ndarray: int64 class ids.
    """
    tag_source = core.check_tag_source(tag_source)
    if tag_source == 'img_tags':
        if sample.tags is None:
            raise ValueError(f'{sample.stem}: the dataset gives no img_tags; set '
                             "tag_source='gt' or 'pseudo_label'")
        return np.asarray(sample.tags, dtype=np.int64)
    if tag_source == 'gt':
        if sample.gt_path is None:
            raise ValueError(f"{sample.stem}: tag_source='gt' needs a GT mask path")
        return core.classes_in_label(load_label_png(sample.gt_path), num_classes)
    return core.classes_in_label(label, num_classes)


# ------------------------------------------------------------------ pass 0: centring
def embedding_mean(samples: Sequence[Sample], settings: DebiasSettings) -> np.ndarray:
    """Pass 0: pixel mean of the raw embeddings over the split (``(D,)`` float32).

    Every rank sums its shard into ``embedding_sum/rank<r>-of-<w>-<inputs>.npz``;
    rank 0 merges into ``embedding_mean.npy`` (reused on resume while the
    embeddings' fingerprints, ``embedding_mean.json``, are unchanged).

    Raises:
        ValueError: naming the embedding whose dimension differs from the others'.
    """
    inputs = embedding_inputs(samples, settings)
    if mean_ready(settings, inputs):
        return np.load(settings.mean_file)
    rank, world_size = get_dist_info()
    sum_dir = osp.join(settings.work_dir, 'embedding_sum')
    parts = [osp.join(sum_dir, f'rank{r}-of-{world_size}-{inputs}.npz')
             for r in range(world_size)]
    if not osp.exists(parts[rank]):
        total, count, first = None, 0, None
        for sample in samples[rank::world_size]:
            path = settings.embedding_path(sample.stem)
            array = load_embedding(path, stride=None)
            if first is not None and array.shape[0] != first[1]:
                raise ValueError(
                    f'{path}: embedding with {array.shape[0]} channels, but '
                    f'{first[0]} has {first[1]}: the embeddings of '
                    f'{settings.embedding_dir} must share one dimension')
            first = first or (path, array.shape[0])
            flat = array.reshape(array.shape[0], -1).astype(np.float64)
            total = flat.sum(axis=1) if total is None else total + flat.sum(axis=1)
            count += flat.shape[1]
        if total is None:
            raise ValueError(f'rank {rank}: no embedding to average')
        save_with(parts[rank], lambda tmp: np.savez(
            tmp, total=total, count=count, first=str(first[0])))
    sync_after(parts)
    if rank == 0:
        totals = [np.load(path) for path in parts]
        dims = {len(part['total']) for part in totals}
        if len(dims) > 1:
            examples = ', '.join(f'{part["first"]} ({len(part["total"])})'
                                 for part in totals)
            raise ValueError(f'the embeddings of {settings.embedding_dir} differ in '
                             f'dimension across ranks: {examples}')
        mean = sum(part['total'] for part in totals) / sum(
            int(part['count']) for part in totals)
        save_with(settings.mean_file,
                  lambda tmp: np.save(tmp, mean.astype(np.float32)))
        save_text(osp.join(settings.work_dir, 'embedding_mean.json'),
                  json.dumps(dict(inputs=inputs)))
        for stale in glob.glob(osp.join(sum_dir, 'rank*.npz')):
            if stale not in parts:
                os.remove(stale)
    sync_after([settings.mean_file], ready=lambda _: mean_ready(settings, inputs))
    return np.load(settings.mean_file)


# ----------------------------------------------------------------- pass 1: centroids
def _check_pass1_params(settings: DebiasSettings) -> None:
    """Refuse to resume pass 1 with settings other than those of its files."""
    check_job_settings(settings.work_dir, settings.pass1_params(),
                       record='pass1_params.json',
                       outputs=lambda name: name == 'centroids')


def centroids_of_image(sample: Sample, settings: DebiasSettings,
                       mean: Optional[np.ndarray]) -> core.ImageCentroids:
    """Step 1 for one image, read from its files."""
    label = load_pseudo_label(settings.label_path(sample.stem), settings.num_classes)
    check_label_size(sample, settings, label)
    embedding = load_embedding(settings.embedding_path(sample.stem), label.shape,
                               settings.embedding_stride)
    check_dimension(settings.embedding_path(sample.stem), embedding, mean,
                    'the dataset mean embedding')
    unit = core.normalise_embedding(torch.as_tensor(embedding).to(settings.device),
                                    mean)
    grid = core.resize_label_to_grid(label, embedding.shape[1:])
    return core.image_centroids(unit, grid, settings.k_fg, settings.k_bg,
                                settings.kmeans_iters, settings.seed)


def check_label_size(sample: Sample, settings: DebiasSettings,
                     label: np.ndarray) -> None:
    """Raise naming the pseudo label when its size differs from its image's."""
    if not sample.img_path or not osp.isfile(sample.img_path):
        return
    size = image_size(sample.img_path)  # EXIF rotation applied, as loaders do
    if tuple(label.shape) != size:
        raise ValueError(f'{settings.label_path(sample.stem)}: pseudo label of size '
                         f'{tuple(label.shape)}, but its image {sample.img_path} is '
                         f'{size}')


def check_dimension(path: str, embedding: np.ndarray,
                    reference: Optional[np.ndarray], what: str) -> None:
    """Raise naming the embedding when its channels differ from ``reference``'s
    last dimension (the dataset mean, the debiased centroids)."""
    if reference is None:
        return
    dim = np.asarray(reference).shape[-1]
    if embedding.shape[0] != dim:
        raise ValueError(f'{path}: embedding with {embedding.shape[0]} channels, but '
                         f'{what} has {dim}: the embeddings must share one '
                         'dimension')


def _write_image_centroids(sample: Sample, settings: DebiasSettings,
                           mean: Optional[np.ndarray]) -> None:
    inputs = image_inputs(sample, settings)
    save_image_centroids(settings.image_centroid_path(sample.stem),
                         centroids_of_image(sample, settings, mean), inputs)


def compute_centroids(samples: Sequence[Sample], settings: DebiasSettings,
                      mean: Optional[np.ndarray], resume: bool = True) -> None:
    """Pass 1: per-image centroid files, sharded over ranks, one image at a time.

    With ``num_workers`` the images of a rank are spread over a process pool; each
    worker still holds one image at a time.
    """
    _check_pass1_params(settings)
    redo = []

    def done(sample: Sample) -> bool:
        state = pass1_state(sample, settings)
        if state not in (None, 'missing'):
            redo.append(state)
        return state is None

    run_offline_job(
        list(samples), partial(_write_image_centroids, settings=settings, mean=mean),
        output_path=lambda sample: settings.image_centroid_path(sample.stem),
        num_workers=settings.num_workers, desc='debias pass 1: centroids',
        resume=resume, chunksize=8, is_done=done)
    if redo:
        warnings.warn(f'debias pass 1: recomputed {len(redo)} centroid files: '
                      f'{"; ".join(redo[:3])}', stacklevel=2)


# --------------------------------------------------------------------- merge (2, 3)
def merge_centroids(stems: Sequence[str], settings: DebiasSettings,
                    mean: Optional[np.ndarray],
                    chunk_rows: int = 65536) -> Dict[str, np.ndarray]:
    """Rank 0: steps 2-3 over all per-image files, in bounded memory.

    One read of the per-image files appends their vectors to a raw file (then
    wrapped as ``centroid_vectors.npy``) and sums the background centroids; two
    chunked reads of that file give the distances and the debiased centroids.

    Returns:
        dict: the arrays saved in ``centroids.npz`` (:mod:`mars_mm.debias.formats`).
    """
    image_index, class_ids, sizes = [], [], []
    bg_sum, bg_count, dim = None, 0, None
    raw_path = settings.vector_file + '.raw'
    remove_merge_leftovers(settings)
    with atomic_write(raw_path, suffix='.raw') as tmp_raw:
        with open(tmp_raw, 'wb') as raw:
            for index, stem in enumerate(stems):
                path = settings.image_centroid_path(stem)
                ids, vectors, image_sizes = load_image_centroids(path)
                sizes.append(image_sizes)
                if dim is None and vectors.ndim == 2 and len(vectors):
                    dim = vectors.shape[1]
                if len(vectors) and vectors.shape[1] != dim:
                    raise ValueError(
                        f'{settings.embedding_path(stem)}: embedding with '
                        f'{vectors.shape[1]} channels (centroids {path}), the '
                        f'earlier images have {dim}: the embeddings must share '
                        'one dimension')
                raw.write(np.ascontiguousarray(vectors, np.float32).tobytes())
                image_index.append(np.full(len(ids), index, np.int64))
                class_ids.append(ids.astype(np.int64))
                background = vectors[ids == 0].astype(np.float64)
                bg_sum = background.sum(0) if bg_sum is None else bg_sum + \
                    background.sum(0)
                bg_count += len(background)
    if dim is None:
        raise ValueError('no centroid at all: are the pseudo labels empty?')
    image_index = np.concatenate(image_index)
    class_ids = np.concatenate(class_ids)
    sizes = np.concatenate(sizes).astype(np.int64)
    total = len(class_ids)
    npy_from_raw(raw_path, settings.vector_file, (total, dim), np.float32)
    if not bg_count:
        raise ValueError('no background centroid in the dataset: the distance to '
                         'background is undefined (do the labels contain class 0?)')
    b_mean = bg_sum / bg_count
    distance = np.concatenate([
        core.distance_to_background(chunk, b_mean)
        for chunk in read_npy_chunks(settings.vector_file, chunk_rows)])
    foreground = class_ids > 0
    selected = np.zeros(total, dtype=bool)
    selected_fg, num_selected, cut = core.select_centroids(
        class_ids[foreground], distance[foreground], settings.alpha,
        settings.num_classes)
    selected[np.flatnonzero(foreground)[selected_fg]] = True
    sums = np.zeros((settings.num_classes, dim))
    counts = np.zeros(settings.num_classes, np.int64)
    start = 0
    for chunk in read_npy_chunks(settings.vector_file, chunk_rows):
        rows = slice(start, start + len(chunk))
        core.accumulate_selected(sums, counts, chunk, class_ids[rows], selected[rows])
        start += len(chunk)
    debiased, debiased_valid = core.finish_debiased(sums, counts)
    arrays = dict(
        stems=np.asarray(stems), image_index=image_index, class_ids=class_ids,
        sizes=sizes, distance=distance.astype(np.float32), selected=selected,
        debiased=debiased, debiased_valid=debiased_valid, num_selected=num_selected,
        cut=cut.astype(np.float32), background_mean=b_mean.astype(np.float32),
        embedding_mean=(np.zeros(0, np.float32) if mean is None
                        else np.asarray(mean, np.float32)),
        alpha=np.float64(settings.alpha), k_fg=np.int64(settings.k_fg),
        k_bg=np.int64(settings.k_bg))
    # before the new centroid file exists (other ranks wait for it): labels made
    # from other centroids or inputs must not be resumed
    invalidate_pass2(stems, settings, arrays)
    save_centroid_file(settings.centroid_file, arrays)
    return arrays


# -------------------------------------------------------------------- pass 2: labels
def debias_sample(sample: Sample, settings: DebiasSettings,
                  centroids: Dict[str, np.ndarray],
                  always_map: bool = False) -> core.DebiasResult:
    """Steps 4-6 for one sample, read from its files.

    Args:
        sample: the image.
        settings: Stage 3 settings.
        centroids: from :func:`mars_mm.debias.formats.load_centroid_file`.
        always_map: compute the map even without foreground (the report's gallery).
    """
    label = load_pseudo_label(settings.label_path(sample.stem), settings.num_classes)
    embedding = load_embedding(settings.embedding_path(sample.stem), label.shape,
                               settings.embedding_stride)
    check_dimension(settings.embedding_path(sample.stem), embedding,
                    centroids['debiased'], 'the debiased centroids')
    refinement = core.Refinement.from_config(settings.refinement)
    image = None
    if refinement.method == 'crf':
        image = load_rgb(sample.img_path)
        if image.shape[:2] != label.shape:
            raise ValueError(f'{sample.img_path}: image {image.shape[:2]} and pseudo '
                             f'label {label.shape} differ in size')
    tags = resolve_tags(sample, label, settings.tag_source, settings.num_classes)
    return core.debias_image(label, embedding, tags, centroids['debiased'],
                             centroids['debiased_valid'], image,
                             centroids['embedding_mean'], refinement, always_map)


def _write_debiased_label(sample: Sample, settings: DebiasSettings,
                          centroids: Dict[str, np.ndarray]) -> None:
    result = debias_sample(sample, settings, centroids)
    save_label_png(settings.output_label_path(sample.stem), result.label)


def write_debiased_labels(samples: Sequence[Sample], settings: DebiasSettings,
                          resume: bool = True) -> None:
    """Pass 2: debiased label PNGs with a worker pool (sharded, atomic, resumable)."""
    centroids = load_centroid_file(settings.centroid_file)
    run_offline_job(
        list(samples),
        partial(_write_debiased_label, settings=settings, centroids=centroids),
        output_path=lambda sample: settings.output_label_path(sample.stem),
        num_workers=settings.num_workers, desc='debias pass 2: labels',
        resume=resume)
