"""SegFPFNMetric equals mmseg's IoUMetric, and its FP/FN equal a pixel count."""
import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric

from mars_mm.registry import METRICS
from mars_mm.utils.io import load_label_png

CLASSES = ('background', 'a', 'b', 'c', 'd')
DEFAULT_ARGS = dict(type='SegFPFNMetric', per_class=True)


def make_samples(seed=0, num=5, size=24):
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(num):
        gt = rng.integers(0, 4, (size, size))  # class 'd' (4) never in GT
        gt[rng.random((size, size)) < 0.1] = 255
        pred = np.where(rng.random((size, size)) < 0.6, gt, rng.integers(0, 5, (size,
                                                                                 size)))
        pred[pred == 255] = 0
        samples.append(dict(
            img_path=f'/x/img_{index}.jpg',
            pred_sem_seg=dict(data=torch.from_numpy(pred)[None]),
            gt_sem_seg=dict(data=torch.from_numpy(gt)[None])))
    return samples


def run(metric, samples):
    metric.dataset_meta = dict(classes=CLASSES)
    metric.process({}, samples[:2])
    metric.process({}, samples[2:])
    return metric.evaluate(len(samples))


def test_equals_mmseg_iou_metric_and_brute_force_fp_fn():
    samples = make_samples()
    ours = run(METRICS.build(DEFAULT_ARGS), samples)
    theirs = run(IoUMetric(iou_metrics=['mIoU']), samples)
    assert ours['mIoU'] == pytest.approx(float(theirs['mIoU']), abs=1e-4)
    assert ours['aAcc'] == pytest.approx(float(theirs['aAcc']), abs=1e-4)
    gts = np.concatenate([s['gt_sem_seg']['data'].numpy().ravel() for s in samples])
    preds = np.concatenate([s['pred_sem_seg']['data'].numpy().ravel()
                            for s in samples])
    preds, gts = preds[gts != 255], gts[gts != 255]
    fps, fns = [], []
    for c, name in enumerate(CLASSES):
        tp = np.sum((preds == c) & (gts == c))
        union = np.sum((preds == c) | (gts == c))
        fp = np.sum((preds == c) & (gts != c)) / union * 100
        fn = np.sum((preds != c) & (gts == c)) / union * 100
        assert ours[f'IoU.{name}'] == pytest.approx(tp / union * 100, abs=0.006)
        assert ours[f'FP.{name}'] == pytest.approx(fp, abs=0.006)
        assert ours[f'FN.{name}'] == pytest.approx(fn, abs=0.006)
        fps.append(fp)
        fns.append(fn)
    assert ours['FN.d'] == 0 and ours['IoU.d'] == 0  # predicted, never true
    assert ours['mFP'] == pytest.approx(np.mean(fps), abs=0.006)
    assert ours['mFN'] == pytest.approx(np.mean(fns), abs=0.006)


def test_output_dir_saves_palette_pngs(tmp_path):
    samples = make_samples(num=2)
    metric = METRICS.build(dict(type='SegFPFNMetric', output_dir=str(tmp_path),
                                format_only=True))
    assert run(metric, samples) == {}
    saved = load_label_png(str(tmp_path / 'img_1.png'))
    np.testing.assert_array_equal(saved, samples[1]['pred_sem_seg']['data'][0])
