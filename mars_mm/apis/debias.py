"""MARS Stage 3 as a streaming offline job (called by ``tools/mars/debias.py``).

Passes over a split of N images, each sharded over ranks and resumable:

0. (only with ``centring='dataset'``) the dataset mean of the raw embeddings, from
   per-rank running sums (``<work>/embedding_sum/``) merged into
   ``<work>/embedding_mean.npy``.
1. **centroids**: one image at a time, k-means per class; one small file per image
   ``<work>/centroids/<stem>.npz`` (atomic, so a killed run resumes where it stopped).
   Rank 0 then merges them, streaming, into ``<work>/centroid_vectors.npy`` and the
   summary ``<work>/centroids.npz`` (format in :mod:`mars_mm.core.debias`): background
   mean, distances, selection and the debiased centroids ``V``. Memory stays O(N K)
   scalars plus one chunk of vectors, whatever N.
2. **labels**: a worker pool writes ``<work>/labels/<stem>.png`` through
   :func:`mars_mm.utils.offline.run_offline_job` (sharded, atomic, resumable).
3. **report**: :func:`bias_report` (markdown + JSON + figures) on rank 0.

All algorithmic steps are the plain functions of :mod:`mars_mm.core.debias`.
"""
import heapq
import json
import os
import os.path as osp
import time
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence

import numpy as np

from mars_mm.core import debias as core
from mars_mm.core.metrics import ConfusionMatrix, map_special_labels
from mars_mm.utils.io import (
    BIASED_INDEX,
    IGNORE_INDEX,
    atomic_write,
    load_label_png,
    save_label_png,
    save_with,
)
from mars_mm.utils.offline import barrier, get_dist_info, run_offline_job

TAG_SOURCES = ('dataset', 'gt', 'pseudo_label')
CENTRING = ('none', 'dataset')


class Sample(NamedTuple):
    """One image of the split.

    Attributes:
        stem: file stem shared by the image, label and embedding.
        img_path: the RGB image (needed by the CRF and the report).
        tags: image-level classes, or ``None`` to derive them (see ``tag_source``).
        gt_path: ground-truth mask if known (tags from GT, report IoU), else ``None``.
    """
    stem: str
    img_path: Optional[str]
    tags: Optional[np.ndarray]
    gt_path: Optional[str] = None


@dataclass
class DebiasSettings:
    """Everything Stage 3 needs; the ``debias`` dict of a ``configs/mars/`` config.

    Attributes:
        pseudo_label_dir: folder of baseline pseudo-label PNGs ``<stem>.png``.
        embedding_dir: folder of embeddings ``<stem>.npy`` (float16 ``(D, h, w)``).
        work_dir: output folder (centroids, ``labels/``, ``report/``).
        num_classes: C + 1 (background included).
        class_names: names of the C + 1 classes (reports); default ``class<i>``.
        k_fg, k_bg: k-means clusters per foreground class / for the background.
        alpha: share of each class's centroids kept for ``V_c``.
        centring: ``'dataset'`` subtracts the dataset mean of the embeddings before
            normalisation **[decision]**, ``'none'`` uses raw codes (paper).
        kmeans_iters, seed: k-means settings (fixed seed: reproducible).
        refinement: dict for :meth:`mars_mm.core.debias.Refinement.from_config`.
        tag_source: ``'dataset'`` (``img_tags`` of the dataset, the paper's ``C_I``),
            ``'gt'`` (classes of the GT mask) or ``'pseudo_label'`` (its classes).
        embedding_stride: expected stride of the embedding grid (``h = ceil(H / s)``);
            ``None`` accepts any grid.
        num_workers: processes of the label pass.
        label_suffix, embedding_suffix: file endings.
        report: dict(gallery=8, enabled=True, dpi=150).
        device: torch device for pass 1 (``'cpu'``; k-means is cheap).
    """
    pseudo_label_dir: str
    embedding_dir: str
    work_dir: str
    num_classes: int
    class_names: Optional[Sequence[str]] = None
    k_fg: int = 2
    k_bg: int = 2
    alpha: float = 0.4
    centring: str = 'none'
    kmeans_iters: int = 30
    seed: int = 0
    refinement: Dict[str, Any] = field(default_factory=lambda: dict(type='crf'))
    tag_source: str = 'dataset'
    embedding_stride: Optional[int] = 8
    num_workers: int = 0
    label_suffix: str = '.png'
    embedding_suffix: str = '.npy'
    report: Dict[str, Any] = field(default_factory=dict)
    device: str = 'cpu'

    def __post_init__(self) -> None:
        if self.centring not in CENTRING:
            raise ValueError(f'centring must be one of {CENTRING}, got '
                             f'{self.centring!r}')
        if self.tag_source not in TAG_SOURCES:
            raise ValueError(f'tag_source must be one of {TAG_SOURCES}, got '
                             f'{self.tag_source!r}')
        if self.k_fg < 1 or self.k_bg < 1:
            raise ValueError(f'k_fg and k_bg must be >= 1, got {self.k_fg}, '
                             f'{self.k_bg}')
        if not 0 < self.alpha <= 1:
            raise ValueError(f'alpha must lie in (0, 1], got {self.alpha}')
        core.Refinement.from_config(self.refinement)  # validate early
        if self.class_names is None:
            self.class_names = ['background'] + [
                f'class{i}' for i in range(1, self.num_classes)]
        self.class_names = list(self.class_names)
        if len(self.class_names) != self.num_classes:
            raise ValueError(f'{len(self.class_names)} class names for '
                             f'{self.num_classes} classes')

    # paths -------------------------------------------------------------------------
    def label_path(self, stem: str) -> str:
        return osp.join(self.pseudo_label_dir, stem + self.label_suffix)

    def embedding_path(self, stem: str) -> str:
        return osp.join(self.embedding_dir, stem + self.embedding_suffix)

    def image_centroid_path(self, stem: str) -> str:
        return osp.join(self.work_dir, 'centroids', stem + '.npz')

    def output_label_path(self, stem: str) -> str:
        return osp.join(self.work_dir, 'labels', stem + '.png')

    @property
    def centroid_file(self) -> str:
        return osp.join(self.work_dir, 'centroids.npz')

    @property
    def vector_file(self) -> str:
        return osp.join(self.work_dir, 'centroid_vectors.npy')

    @property
    def mean_file(self) -> str:
        return osp.join(self.work_dir, 'embedding_mean.npy')

    def pass1_params(self) -> dict:
        """Settings that determine the per-image centroid files."""
        return dict(k_fg=self.k_fg, k_bg=self.k_bg, centring=self.centring,
                    kmeans_iters=self.kmeans_iters, seed=self.seed,
                    pseudo_label_dir=osp.abspath(self.pseudo_label_dir),
                    embedding_dir=osp.abspath(self.embedding_dir))


# -------------------------------------------------------------------------- loading
def load_pseudo_label(path: str, num_classes: int) -> np.ndarray:
    """A baseline pseudo label, checked: values 0..C, 254 or 255.

    Raises:
        ValueError: naming ``path`` for values outside that set.
    """
    label = load_label_png(path)
    bad = (label >= num_classes) & (label != IGNORE_INDEX) & (label != BIASED_INDEX)
    if bad.any():
        raise ValueError(f'{path}: label value {int(label[bad].max())} outside '
                         f'0..{num_classes - 1} (and not 254/255)')
    return label


def load_embedding(path: str, image_size: Optional[Sequence[int]] = None,
                   stride: Optional[int] = 8) -> np.ndarray:
    """A ``(D, h, w)`` embedding, checked against the image size.

    Raises:
        FileNotFoundError / ValueError: naming ``path``.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'embedding file not found: {path}')
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: cannot read embedding ({err})') from err
    if array.ndim != 3 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f'{path}: an embedding must be a float (D, h, w) array, got '
                         f'{array.dtype} {array.shape}')
    if image_size is not None and stride:
        expected = tuple(-(-int(s) // stride) for s in image_size)
        if array.shape[1:] != expected:
            raise ValueError(f'{path}: grid {array.shape[1:]} does not match an '
                             f'image of {tuple(image_size)} at stride {stride} '
                             f'(expected {expected})')
    if not np.isfinite(array).all():
        raise ValueError(f'{path}: embedding holds NaN or inf')
    return array


def load_rgb(path: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB image (the CRF's input)."""
    import mmcv
    if not path or not osp.isfile(path):
        raise FileNotFoundError(f'image file not found: {path}')
    image = mmcv.imread(path, channel_order='rgb')
    if image is None:
        raise ValueError(f'{path}: cannot decode image')
    return image


def resolve_tags(sample: Sample, label: np.ndarray, tag_source: str,
                 num_classes: int) -> np.ndarray:
    """The image-level classes ``C_I`` of a sample."""
    if tag_source == 'dataset':
        if sample.tags is None:
            raise ValueError(f'{sample.stem}: the dataset gives no img_tags; set '
                             "tag_source='gt' or 'pseudo_label'")
        return np.asarray(sample.tags, dtype=np.int64)
    if tag_source == 'gt':
        if sample.gt_path is None:
            raise ValueError(f"{sample.stem}: tag_source='gt' needs a GT mask path")
        source = load_label_png(sample.gt_path)
    else:
        source = label
    values = np.unique(source)
    return values[(values > 0) & (values < num_classes)].astype(np.int64)


def samples_from_dataset(dataset: Any) -> List[Sample]:
    """Samples from a built mmseg dataset (``img_path``, ``img_tags``, GT path)."""
    samples = []
    for index in range(len(dataset)):
        info = dataset.get_data_info(index)
        img_path = info['img_path']
        stem = osp.splitext(osp.basename(img_path))[0]
        tags = info.get('img_tags', None)
        gt_path = info.get('seg_map_path', None)
        if gt_path is not None and not osp.isfile(gt_path):
            gt_path = None
        samples.append(Sample(stem, img_path,
                              None if tags is None else np.asarray(tags, np.int64),
                              gt_path))
    return samples


# ------------------------------------------------------------------ synchronisation
def wait_for_files(paths: Sequence[str], newer_than: float = 0.0,
                   timeout: float = 24 * 3600, poll: float = 2.0) -> None:
    """Block until every path exists (and is newer than ``newer_than``).

    Ranks started with RANK/WORLD_SIZE but no process group cannot barrier; they
    synchronise on the files the other ranks write.
    """
    deadline = time.time() + timeout
    for path in paths:
        while not (osp.exists(path) and osp.getmtime(path) >= newer_than):
            if time.time() > deadline:
                raise TimeoutError(f'waited {timeout:.0f} s for {path}')
            time.sleep(poll)


def _sync_after(paths: Sequence[str], newer_than: float = 0.0) -> None:
    barrier()
    wait_for_files(paths, newer_than)


def _check_pass1_params(settings: DebiasSettings) -> None:
    """Refuse to resume pass 1 with settings other than those of its files."""
    path = osp.join(settings.work_dir, 'pass1_params.json')
    params = settings.pass1_params()
    if osp.exists(path):
        with open(path) as file:
            previous = json.load(file)
        if previous != params:
            raise ValueError(
                f'{path}: the centroid files in {settings.work_dir} were made with '
                f'{previous}, not {params}; use another work dir or delete '
                f'{osp.join(settings.work_dir, "centroids")}')
        return
    if get_dist_info()[0] == 0:
        with atomic_write(path) as tmp, open(tmp, 'w') as file:
            json.dump(params, file, indent=1)


# ------------------------------------------------------------------ pass 0: centring
def embedding_mean(samples: Sequence[Sample], settings: DebiasSettings) -> np.ndarray:
    """Pass 0: pixel mean of the raw embeddings over the split (``(D,)`` float32).

    Every rank sums its shard into ``embedding_sum/rank<r>-of-<w>.npz``; rank 0
    merges into ``embedding_mean.npy`` (reused on resume).
    """
    if osp.exists(settings.mean_file):
        return np.load(settings.mean_file)
    rank, world_size = get_dist_info()
    sum_dir = osp.join(settings.work_dir, 'embedding_sum')
    mine = osp.join(sum_dir, f'rank{rank}-of-{world_size}.npz')
    if not osp.exists(mine):
        total, count = None, 0
        for sample in samples[rank::world_size]:
            array = load_embedding(settings.embedding_path(sample.stem), stride=None)
            flat = array.reshape(array.shape[0], -1).astype(np.float64)
            total = flat.sum(axis=1) if total is None else total + flat.sum(axis=1)
            count += flat.shape[1]
        if total is None:
            raise ValueError(f'rank {rank}: no embedding to average')
        save_with(mine, lambda tmp: np.savez(tmp, total=total, count=count))
    parts = [osp.join(sum_dir, f'rank{r}-of-{world_size}.npz')
             for r in range(world_size)]
    _sync_after(parts)
    if rank == 0:
        totals = [np.load(path) for path in parts]
        mean = sum(part['total'] for part in totals) / sum(
            int(part['count']) for part in totals)
        save_with(settings.mean_file,
                  lambda tmp: np.save(tmp, mean.astype(np.float32)))
    _sync_after([settings.mean_file])
    return np.load(settings.mean_file)


# ----------------------------------------------------------------- pass 1: centroids
def centroids_of_image(sample: Sample, settings: DebiasSettings,
                       mean: Optional[np.ndarray]) -> core.ImageCentroids:
    """Step 1 for one image, read from its files."""
    label_path = settings.label_path(sample.stem)
    label = load_pseudo_label(label_path, settings.num_classes)
    embedding = load_embedding(settings.embedding_path(sample.stem), label.shape,
                               settings.embedding_stride)
    import torch
    unit = core.normalise_embedding(torch.as_tensor(embedding).to(settings.device),
                                    mean)
    grid = core.resize_label_to_grid(label, embedding.shape[1:])
    return core.image_centroids(unit, grid, settings.k_fg, settings.k_bg,
                                settings.kmeans_iters, settings.seed)


def _write_image_centroids(sample: Sample, settings: DebiasSettings,
                           mean: Optional[np.ndarray]) -> None:
    result = centroids_of_image(sample, settings, mean)
    save_with(settings.image_centroid_path(sample.stem),
              lambda tmp: np.savez(tmp, class_ids=result.class_ids,
                                   vectors=result.vectors, sizes=result.sizes))


def compute_centroids(samples: Sequence[Sample], settings: DebiasSettings,
                      mean: Optional[np.ndarray], resume: bool = True) -> None:
    """Pass 1: per-image centroid files, sharded over ranks, one image at a time.

    With ``num_workers`` the images of a rank are spread over a process pool; each
    worker still holds one image at a time.
    """
    _check_pass1_params(settings)
    run_offline_job(
        list(samples), partial(_write_image_centroids, settings=settings, mean=mean),
        output_path=lambda sample: settings.image_centroid_path(sample.stem),
        num_workers=settings.num_workers, desc='debias pass 1: centroids',
        resume=resume, chunksize=8)


def _read_npy_chunks(path: str, chunk_rows: int) -> Iterator[np.ndarray]:
    """Rows of a 2-D ``.npy`` file, ``chunk_rows`` at a time, without mapping it."""
    with open(path, 'rb') as file:
        version = np.lib.format.read_magic(file)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) \
            else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(file)
        if fortran or len(shape) != 2:
            raise ValueError(f'{path}: expected a C-ordered 2-D array')
        remaining = shape[0]
        while remaining:
            rows = min(chunk_rows, remaining)
            chunk = np.fromfile(file, dtype=dtype, count=rows * shape[1])
            if chunk.size != rows * shape[1]:
                raise ValueError(f'{path}: truncated')
            yield chunk.reshape(rows, shape[1])
            remaining -= rows


def merge_centroids(stems: Sequence[str], settings: DebiasSettings,
                    mean: Optional[np.ndarray],
                    chunk_rows: int = 65536) -> Dict[str, np.ndarray]:
    """Rank 0: steps 2-3 over all per-image files, in bounded memory.

    One read of the per-image files appends their vectors to a raw file (then
    wrapped as ``centroid_vectors.npy``) and sums the background centroids; two
    chunked reads of that file give the distances and the debiased centroids.

    Returns:
        dict: the arrays saved in ``centroids.npz``.
    """
    image_index, class_ids, sizes = [], [], []
    bg_sum, bg_count, dim = None, 0, None
    raw_path = settings.vector_file + '.raw'
    with atomic_write(raw_path, suffix='.raw') as tmp_raw:
        with open(tmp_raw, 'wb') as raw:
            for index, stem in enumerate(stems):
                path = settings.image_centroid_path(stem)
                with np.load(path) as data:
                    ids, vectors = data['class_ids'], data['vectors']
                    sizes.append(data['sizes'])
                if dim is None and vectors.ndim == 2 and len(vectors):
                    dim = vectors.shape[1]
                if len(vectors) and vectors.shape[1] != dim:
                    raise ValueError(f'{path}: centroids of dimension '
                                     f'{vectors.shape[1]}, others {dim}')
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
    # wrap the raw rows as a .npy: header first, then the bytes, streamed
    with atomic_write(settings.vector_file) as tmp_npy:
        with open(tmp_npy, 'wb') as out, open(raw_path, 'rb') as raw:
            np.lib.format.write_array_header_1_0(
                out, dict(descr=np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                          fortran_order=False, shape=(total, dim)))
            while True:
                block = raw.read(1 << 24)
                if not block:
                    break
                out.write(block)
    os.remove(raw_path)
    if not bg_count:
        raise ValueError('no background centroid in the dataset: the distance to '
                         'background is undefined (do the labels contain class 0?)')
    b_mean = bg_sum / bg_count
    distance = np.concatenate([
        core.distance_to_background(chunk, b_mean)
        for chunk in _read_npy_chunks(settings.vector_file, chunk_rows)])
    foreground = class_ids > 0
    selected = np.zeros(total, dtype=bool)
    selected_fg, num_selected, cut = core.select_centroids(
        class_ids[foreground], distance[foreground], settings.alpha,
        settings.num_classes)
    selected[np.flatnonzero(foreground)[selected_fg]] = True
    sums = np.zeros((settings.num_classes, dim))
    counts = np.zeros(settings.num_classes, np.int64)
    start = 0
    for chunk in _read_npy_chunks(settings.vector_file, chunk_rows):
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
    save_with(settings.centroid_file, lambda tmp: np.savez(tmp, **arrays))
    return arrays


def load_centroid_file(path: str) -> Dict[str, np.ndarray]:
    """The per-image essentials of ``centroids.npz``: ``debiased``,
    ``debiased_valid``, ``embedding_mean`` (``None`` without centring)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'centroid file not found: {path}')
    with np.load(path) as data:
        missing = {'debiased', 'debiased_valid', 'embedding_mean'} - set(data.files)
        if missing:
            raise ValueError(f'{path}: not a MARS centroid file (missing '
                             f'{sorted(missing)})')
        mean = data['embedding_mean']
        return dict(debiased=data['debiased'], debiased_valid=data['debiased_valid'],
                    embedding_mean=mean if mean.size else None)


# -------------------------------------------------------------------- pass 2: labels
def debias_sample(sample: Sample, settings: DebiasSettings,
                  centroids: Dict[str, np.ndarray],
                  always_map: bool = False) -> core.DebiasResult:
    """Steps 4-6 for one sample, read from its files."""
    label = load_pseudo_label(settings.label_path(sample.stem), settings.num_classes)
    embedding = load_embedding(settings.embedding_path(sample.stem), label.shape,
                               settings.embedding_stride)
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


# ----------------------------------------------------------------- pass 3: report
def bias_report(samples: Sequence[Sample], settings: DebiasSettings,
                out_dir: Optional[str] = None) -> Dict[str, Any]:
    """Statistics of what was removed, and the figures (rank 0).

    Streams over the baseline and debiased labels once (per-class counts, per class
    a heap of the most-affected images; with GT masks also baseline vs debiased
    IoU), then recomputes the debias map of the gallery images only. The gallery
    takes the classes in turn, so every class MARS touched appears.

    Returns:
        dict: the JSON content of the report.
    """
    from mars_mm.visualization.bias_report import write_report
    out_dir = out_dir or osp.join(settings.work_dir, 'report')
    options = dict(gallery=8, dpi=150)
    options.update(settings.report or {})
    num_classes = settings.num_classes
    foreground = np.zeros(num_classes, np.int64)
    removed = np.zeros(num_classes, np.int64)
    images_with = np.zeros(num_classes, np.int64)
    images_touched = np.zeros(num_classes, np.int64)
    baseline_cm, debiased_cm = ConfusionMatrix(num_classes), \
        ConfusionMatrix(num_classes)
    has_gt = True
    # per class (the class an image lost most pixels of): its most affected images,
    # so that the gallery shows every class MARS touched, not only the worst one
    heaps: Dict[int, List[tuple]] = {}
    for order, sample in enumerate(samples):
        baseline = load_pseudo_label(settings.label_path(sample.stem), num_classes)
        debiased = load_label_png(settings.output_label_path(sample.stem))
        if debiased.shape != baseline.shape:
            raise ValueError(f'{settings.output_label_path(sample.stem)}: size '
                             f'{debiased.shape}, baseline {baseline.shape}')
        stats = core.removal_stats(baseline, debiased, num_classes)
        foreground += stats['foreground']
        removed += stats['removed']
        images_with += stats['foreground'] > 0
        images_touched += stats['removed'] > 0
        fg_total = int(stats['foreground'].sum())
        if fg_total and stats['removed'].any():
            key = (int(stats['removed'].sum()) / fg_total, -order)
            heap = heaps.setdefault(int(stats['removed'].argmax()), [])
            if len(heap) < options['gallery']:
                heapq.heappush(heap, (key, sample))
            elif key > heap[0][0]:
                heapq.heapreplace(heap, (key, sample))
        if has_gt and sample.gt_path is not None:
            gt = load_label_png(sample.gt_path)
            baseline_cm.update(gt, map_special_labels(baseline))
            debiased_cm.update(gt, map_special_labels(debiased))
        else:
            has_gt = False
    with np.load(settings.centroid_file) as data:
        centroid_data = {key: data[key] for key in data.files if key != 'stems'}
    gallery = []
    if options['gallery'] and osp.isfile(settings.centroid_file):
        centroids = load_centroid_file(settings.centroid_file)
        for (fraction, _), sample in _gallery_order(heaps, options['gallery']):
            result = debias_sample(sample, settings, centroids, always_map=True)
            gallery.append(dict(
                stem=sample.stem, removed_fraction=fraction,
                image=load_rgb(sample.img_path) if sample.img_path else None,
                baseline=load_pseudo_label(settings.label_path(sample.stem),
                                           num_classes),
                debias_map=result.debias_map, debiased=result.label))
    summary = dict(
        settings=_jsonable(asdict(settings)), num_images=len(samples),
        class_names=settings.class_names, foreground_pixels=foreground,
        removed_pixels=removed, images_with_class=images_with,
        images_with_removal=images_touched, centroids=centroid_data,
        gt=dict(baseline=baseline_cm.summary(), debiased=debiased_cm.summary())
        if has_gt and len(samples) else None)
    return write_report(out_dir, summary, gallery, dpi=options['dpi'])


def _gallery_order(heaps: Dict[int, List[tuple]], size: int) -> List[tuple]:
    """Round robin over classes (most affected class first), worst image first."""
    queues = sorted((sorted(heap, reverse=True) for heap in heaps.values()),
                    key=lambda queue: queue[0][0], reverse=True)
    chosen = []
    for rank in range(size):
        for queue in queues:
            if rank < len(queue) and len(chosen) < size:
                chosen.append(queue[rank])
    return chosen


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


# ------------------------------------------------------------------------- driver
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
    _sync_after([settings.image_centroid_path(stem) for stem in stems])
    if rank == 0:
        merge_centroids(stems, settings, mean)
    # (1 s of slack: file times use a coarser clock than time.time())
    _sync_after([settings.centroid_file], newer_than=started - 1.0)
    write_debiased_labels(samples, settings, resume=resume)
    _sync_after([settings.output_label_path(stem) for stem in stems])
    if report and rank == 0 and settings.report.get('enabled', True):
        bias_report(samples, settings)


# ------------------------------------------------------------------ from a config
def build_samples(cfg: Any) -> tuple:
    """The split to debias, from the config's dataset.

    ``cfg.debias.dataset`` if given, else ``cfg.train_infer_dataloader.dataset``
    (the train split without augmentation), else ``cfg.train_dataloader.dataset``.
    The pipeline is dropped: only the file list and the tags are needed.

    Returns:
        tuple: (list of :class:`Sample`, class names with background first).
    """
    import copy

    from mars_mm.registry import DATASETS
    dataset_cfg = cfg.debias.get('dataset', None)
    for key in ('train_infer_dataloader', 'train_dataloader'):
        if dataset_cfg is None and key in cfg:
            dataset_cfg = cfg[key]['dataset']
    if dataset_cfg is None:
        raise ValueError('the config names no dataset: set debias.dataset or '
                         'train_infer_dataloader.dataset')
    dataset_cfg = copy.deepcopy(dataset_cfg)
    dataset_cfg['pipeline'] = []
    dataset_cfg['lazy_init'] = False
    dataset = DATASETS.build(dataset_cfg)
    return samples_from_dataset(dataset), list(dataset.metainfo['classes'])


def settings_from_config(cfg: Any, class_names: Sequence[str]) -> DebiasSettings:
    """:class:`DebiasSettings` from ``cfg.debias`` (work dir: ``cfg.work_dir``)."""
    options = dict(cfg.debias)
    options.pop('dataset', None)
    options.setdefault('work_dir', cfg.get('work_dir'))
    options.setdefault('class_names', list(class_names))
    options.setdefault('num_classes', len(class_names))
    options['refinement'] = dict(options.get('refinement') or dict(type='crf'))
    if isinstance(options['refinement'].get('crf'), dict):
        options['refinement']['crf'] = dict(options['refinement']['crf'])
    options['report'] = dict(options.get('report') or {})
    return DebiasSettings(**options)


def debias_from_config(cfg: Any, resume: bool = True, report: bool = True,
                       report_only: bool = False) -> DebiasSettings:
    """Everything ``tools/mars/debias.py`` does after parsing its arguments."""
    samples, class_names = build_samples(cfg)
    settings = settings_from_config(cfg, class_names)
    if report_only:
        if get_dist_info()[0] == 0:
            bias_report(samples, settings)
    else:
        debias_pseudo_labels(samples, settings, resume=resume, report=report)
    return settings


# --------------------------------------------------------------- evaluation
def evaluate_debiasing(stems: Sequence[str], gt_dir: str, baseline_dir: str,
                       debiased_dir: str, num_classes: int,
                       context_dir: Optional[str] = None,
                       biased_classes: Sequence[int] = ()) -> Dict[str, Any]:
    """Baseline vs debiased pseudo labels against GT, and removal vs known context.

    254 and 255 in a pseudo label count as background (``map_special_labels``).
    With ``context_dir`` (``<stem>.png``, non-zero = planted context): removal
    precision (removed pixels that are context), recall (context pixels the baseline
    called foreground that were removed) and the share of true object pixels removed.

    Returns:
        dict: ``baseline`` / ``debiased`` scores (:func:`scores_from_confusion`),
        ``removal`` counts and ratios (overall and per biased class).
    """
    baseline_cm, debiased_cm = ConfusionMatrix(num_classes), \
        ConfusionMatrix(num_classes)
    totals: Dict[str, int] = {}
    per_class: Dict[int, Dict[str, int]] = {c: {} for c in biased_classes}
    for stem in stems:
        gt = load_label_png(osp.join(gt_dir, stem + '.png'))
        baseline = load_pseudo_label(osp.join(baseline_dir, stem + '.png'),
                                     num_classes)
        debiased = load_pseudo_label(osp.join(debiased_dir, stem + '.png'),
                                     num_classes)
        if not gt.shape == baseline.shape == debiased.shape:
            raise ValueError(f'{stem}: GT {gt.shape}, baseline {baseline.shape} and '
                             f'debiased {debiased.shape} differ in size')
        baseline_cm.update(gt, map_special_labels(baseline))
        debiased_cm.update(gt, map_special_labels(debiased))
        if context_dir is None:
            continue
        context = load_label_png(osp.join(context_dir, stem + '.png')) > 0
        for key, value in core.removal_counts(gt, baseline, debiased,
                                              context).items():
            totals[key] = totals.get(key, 0) + value
        for class_id, counts in per_class.items():
            own = baseline == class_id
            for key, value in core.removal_counts(
                    np.where(gt == class_id, gt, 0), np.where(own, baseline, 0),
                    debiased, context).items():
                counts[key] = counts.get(key, 0) + value

    def ratios(counts: Dict[str, int]) -> Dict[str, Any]:
        def share(num: str, den: str) -> Optional[float]:
            return 100.0 * counts[num] / counts[den] if counts.get(den) else None
        return dict(counts, precision=share('removed_context', 'removed'),
                    recall=share('removed_context', 'context_fg'),
                    object_removed=share('removed_object', 'object_fg'),
                    object_removed_of_all=share('removed_object', 'object'))

    result = dict(num_images=len(stems), baseline=baseline_cm.summary(),
                  debiased=debiased_cm.summary())
    if context_dir is not None:
        result['removal'] = ratios(totals)
        result['removal_per_class'] = {c: ratios(v) for c, v in per_class.items()}
    return result


# ------------------------------------------------------- oracle inputs (analysis)
def oracle_embedding(gt: np.ndarray, context: np.ndarray, num_classes: int,
                     stride: int = 8, context_weight: float = 0.5) -> np.ndarray:
    """An ideal USS embedding for MARS, from the GT and the planted-context mask.

    Channels: plain background, context, classes 1..C. Objects and plain background
    are one-hot; a context pixel is ``(1 - w) * background + w * context``
    (``w = context_weight``): context is background *stuff* with a look of its own,
    the property MARS relies on (``w = 1`` makes it as unlike background as an
    object, and MARS cannot tell them apart). Averaged over ``stride x stride``
    cells, so boundary cells mix their regions; 255 pixels count as background.

    Returns:
        np.ndarray: ``(C + 1, ceil(H / stride), ceil(W / stride))`` float16.
    """
    height, width = gt.shape
    code = np.where((gt > 0) & (gt < num_classes), gt.astype(np.int64) + 1, 0)
    is_context = (code == 0) & np.asarray(context, bool)
    vectors = np.eye(num_classes + 1, dtype=np.float32)
    one_hot = vectors[code]
    one_hot[is_context] = (1 - context_weight) * vectors[0] + \
        context_weight * vectors[1]
    grid_h, grid_w = -(-height // stride), -(-width // stride)
    padded = np.pad(one_hot, ((0, grid_h * stride - height),
                              (0, grid_w * stride - width), (0, 0)), mode='edge')
    pooled = padded.reshape(grid_h, stride, grid_w, stride, -1).mean(axis=(1, 3))
    return pooled.transpose(2, 0, 1).astype(np.float16)


def oracle_biased_label(gt: np.ndarray, context: np.ndarray,
                        biased_classes: Sequence[int]) -> np.ndarray:
    """A perfectly *biased* baseline: the GT with its context painted as the first
    biased class present in the image (unchanged if none is present)."""
    label = np.asarray(gt).astype(np.uint8, copy=True)
    present = [c for c in biased_classes if (label == c).any()]
    if present:
        label[np.asarray(context, bool) & (label == 0)] = present[0]
    return label


def rank_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties 1/2)."""
    from scipy.stats import rankdata
    scores = np.concatenate([positive, negative]).astype(np.float64)
    ranks = rankdata(scores)
    num_pos, num_neg = len(positive), len(negative)
    if not num_pos or not num_neg:
        return float('nan')
    return float((ranks[:num_pos].sum() - num_pos * (num_pos + 1) / 2)
                 / (num_pos * num_neg))


def map_separability(stems: Sequence[str], gt_dir: str, context_dir: str,
                     settings: DebiasSettings) -> Dict[str, Dict[str, float]]:
    """How well the debias map tells object from context inside the baseline fg.

    Compares the selected debiased centroids ``V`` of a finished run with an
    *oracle* ``V`` (per class, the mean unit embedding of its GT object pixels): if
    even the oracle's map cannot separate object from context pixels, the embedding
    (USS) is what limits MARS, not the centroid selection.

    Returns:
        dict: for ``'selected'`` and ``'oracle'``: ``auc`` (object above context),
        ``object_mean`` and ``context_mean`` of the map.
    """
    centroids = load_centroid_file(settings.centroid_file)
    mean = centroids['embedding_mean']
    num_classes = settings.num_classes
    sums, counts = None, np.zeros(num_classes)
    cached = []
    for stem in stems:
        gt = load_label_png(osp.join(gt_dir, stem + '.png'))
        embedding = load_embedding(settings.embedding_path(stem), gt.shape,
                                   settings.embedding_stride)
        unit = core.normalise_embedding(embedding, mean)
        grid = core.resize_label_to_grid(gt, embedding.shape[1:]).ravel()
        flat = unit.reshape(unit.shape[0], -1).t().numpy()
        if sums is None:
            sums = np.zeros((num_classes, flat.shape[1]))
        for class_id in range(1, num_classes):
            own = grid == class_id
            sums[class_id] += flat[own].sum(axis=0)
            counts[class_id] += own.sum()
        cached.append((stem, gt))
    oracle = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    results = {}
    for name, debiased, valid in (
            ('selected', centroids['debiased'], centroids['debiased_valid']),
            ('oracle', oracle, counts > 0)):
        objects, contexts = [], []
        for stem, gt in cached:
            baseline = load_pseudo_label(settings.label_path(stem), num_classes)
            context = load_label_png(osp.join(context_dir, stem + '.png')) > 0
            values = np.unique(gt)
            tags = values[(values > 0) & (values < num_classes)]
            result = core.debias_image(
                baseline, np.load(settings.embedding_path(stem)), tags, debiased,
                valid, None, mean, core.Refinement('threshold'), always_map=True)
            if result.debias_map is None:
                continue
            foreground = (baseline > 0) & (baseline < num_classes)
            objects.append(result.debias_map[foreground & (gt > 0) &
                                             (gt < num_classes)])
            contexts.append(result.debias_map[foreground & context])
        objects, contexts = np.concatenate(objects), np.concatenate(contexts)
        results[name] = dict(auc=rank_auc(objects, contexts),
                             object_mean=float(objects.mean()),
                             context_mean=float(contexts.mean()))
    return results
