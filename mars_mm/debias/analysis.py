"""Analysis of a Stage 3 run where the truth is known (planted-bias data, oracles).

* :func:`evaluate_debiasing`: baseline vs debiased pseudo labels against the GT, and
  the removal against the known planted context (:func:`removal_counts`);
* :func:`oracle_embedding` / :func:`oracle_biased_label`: ideal inputs that isolate
  where the MARS chain loses accuracy (USS embedding or CAM labels);
* :func:`map_separability` (with :func:`rank_auc`): does the debias map rank object
  pixels above context ones, with the run's and with oracle centroids?

``tools/analysis/{eval_debias,oracle_debias_inputs,debias_separability}.py`` call them.
"""
import os.path as osp
from typing import Any, Dict, Optional, Sequence

import numpy as np

from mars_mm.core import debias as core
from mars_mm.core.metrics import ConfusionMatrix, map_special_labels
from mars_mm.core.refine import Refinement
from mars_mm.debias.formats import load_centroid_file, load_embedding, load_pseudo_label
from mars_mm.debias.settings import DebiasSettings
from mars_mm.utils.io import BIASED_INDEX, IGNORE_INDEX, load_label_png


# --------------------------------------------------------------------- evaluation
def removal_counts(gt: np.ndarray, baseline: np.ndarray, debiased: np.ndarray,
                   context: np.ndarray) -> Dict[str, int]:
    """Pixel counts that score a debiasing against known context (one image).

    Args:
        gt: ``(H, W)`` ground truth (0 background, 1..C objects, 255 ignored).
        baseline: ``(H, W)`` baseline pseudo label.
        debiased: ``(H, W)`` debiased label (254 = removed).
        context: ``(H, W)`` bool, planted context (background in the GT).

    Returns:
        dict: ``removed`` (baseline foreground marked 254), ``removed_context``,
        ``context_fg`` (context the baseline called foreground),
        ``removed_object`` / ``object_fg`` (true object pixels, removed / called
        foreground by the baseline) and ``object`` (all true object pixels).
    """
    baseline = np.asarray(baseline)
    foreground = (baseline > 0) & (baseline <= core.MAX_CLASS_ID)
    removed = foreground & (np.asarray(debiased) == BIASED_INDEX)
    context = np.asarray(context, dtype=bool)
    gt = np.asarray(gt)
    obj = (gt > 0) & (gt != IGNORE_INDEX)
    return dict(removed=int(removed.sum()),
                removed_context=int((removed & context).sum()),
                context_fg=int((foreground & context).sum()),
                removed_object=int((removed & obj).sum()),
                object_fg=int((foreground & obj).sum()),
                object=int(obj.sum()))


def evaluate_debiasing(stems: Sequence[str], gt_dir: str, baseline_dir: str,
                       debiased_dir: str, num_classes: int,
                       context_dir: Optional[str] = None,
                       biased_classes: Sequence[int] = ()) -> Dict[str, Any]:
    """Baseline vs debiased pseudo labels against GT, and removal vs known context.

    254 and 255 in a pseudo label count as background (``map_special_labels``).
    With ``context_dir`` (``<stem>.png``, non-zero = planted context): removal
    precision (removed pixels that are context), recall (context pixels the baseline
    called foreground that were removed) and the share of true object pixels removed.

    Args:
        stems: the images.
        gt_dir, baseline_dir, debiased_dir: folders of ``<stem>.png``.
        num_classes: C + 1.
        context_dir: folder of planted-context masks, or ``None``.
        biased_classes: classes whose removal is also scored on their own.

    Returns:
        dict: ``baseline`` / ``debiased`` scores
        (:func:`mars_mm.core.metrics.scores_from_confusion`),
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
        for key, value in removal_counts(gt, baseline, debiased, context).items():
            totals[key] = totals.get(key, 0) + value
        for class_id, counts in per_class.items():
            own = baseline == class_id
            for key, value in removal_counts(
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


# ------------------------------------------------------------------ oracle inputs
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
            tags = core.classes_in_label(gt, num_classes)
            result = core.debias_image(
                baseline, np.load(settings.embedding_path(stem)), tags, debiased,
                valid, None, mean, Refinement('threshold'), always_map=True)
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
