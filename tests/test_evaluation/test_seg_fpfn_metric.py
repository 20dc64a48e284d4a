"""SegFPFNMetric is mmseg's IoUMetric; its FP/FN equal a pixel count."""
import numpy as np
import pytest
import torch
from mmseg.evaluation import IoUMetric

from mars_mm.registry import METRICS
from mars_mm.utils.io import load_label_png

CLASSES = ('background', 'a', 'b', 'c', 'd', 'e')
DEFAULT_ARGS = dict(type='SegFPFNMetric', per_class=True)


def make_samples(seed=0, num=5, size=24):
    rng = np.random.default_rng(seed)
    samples = []
    for index in range(num):
        gt = rng.integers(0, 4, (size, size))  # 'd' (4) never true, 'e' (5) nowhere
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


def test_is_mmseg_iou_metric():
    metric = METRICS.build(DEFAULT_ARGS)
    assert isinstance(metric, IoUMetric)
    assert metric.process.__func__ is IoUMetric.process


def test_equals_mmseg_iou_metric_and_brute_force_fp_fn():
    samples = make_samples()
    ours = run(METRICS.build(DEFAULT_ARGS), samples)
    theirs = run(IoUMetric(iou_metrics=['mIoU']), samples)
    # the same computation (IoUMetric's float32 rounding, read as a plain float)
    assert ours['mIoU'] == round(float(theirs['mIoU']), 2)
    assert ours['aAcc'] == round(float(theirs['aAcc']), 2)
    gts = np.concatenate([s['gt_sem_seg']['data'].numpy().ravel() for s in samples])
    preds = np.concatenate([s['pred_sem_seg']['data'].numpy().ravel()
                            for s in samples])
    preds, gts = preds[gts != 255], gts[gts != 255]
    ious, fps, fns = [], [], []
    for c, name in enumerate(CLASSES[:5]):
        tp = np.sum((preds == c) & (gts == c))
        union = np.sum((preds == c) | (gts == c))
        iou = tp / union * 100
        fp = np.sum((preds == c) & (gts != c)) / union * 100
        fn = np.sum((preds != c) & (gts == c)) / union * 100
        assert ours[f'IoU.{name}'] == pytest.approx(iou, abs=0.006)
        assert ours[f'FP.{name}'] == pytest.approx(fp, abs=0.006)
        assert ours[f'FN.{name}'] == pytest.approx(fn, abs=0.006)
        ious.append(iou)
        fps.append(fp)
        fns.append(fn)
    assert ours['FN.d'] == 0 and ours['IoU.d'] == 0 and ours['FP.d'] == 100
    # a class neither true nor predicted has no score and is left out of the means
    assert np.isnan(ours['IoU.e']) and np.isnan(ours['FP.e'])
    assert ours['mIoU'] == pytest.approx(np.mean(ious), abs=0.006)
    assert ours['mFP'] == pytest.approx(np.mean(fps), abs=0.006)
    assert ours['mFN'] == pytest.approx(np.mean(fns), abs=0.006)
    assert list(ours)[:4] == ['aAcc', 'mIoU', 'mFP', 'mFN']


def test_logs_the_per_class_table(monkeypatch):
    from mars_mm.evaluation.metrics import seg_fpfn_metric
    logged = []
    monkeypatch.setattr(seg_fpfn_metric, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    metric = METRICS.build(dict(type='SegFPFNMetric'))
    result = run(metric, make_samples())
    assert set(result) == {'aAcc', 'mIoU', 'mFP', 'mFN'}  # per_class off
    lines = '\n'.join(logged).splitlines()
    header = next(index for index, line in enumerate(lines)
                  if line.split() == ['class', 'IoU', 'FP', 'FN'])
    rows = [line.split() for line in lines[header + 1:header + 1 + len(CLASSES) + 1]]
    assert [row[0] for row in rows] == list(CLASSES) + ['mean']
    assert float(rows[-1][1]) == result['mIoU']
    assert float(rows[-1][2]) == result['mFP']


def test_output_dir_saves_predictions(tmp_path):
    samples = make_samples(num=2)
    metric = METRICS.build(dict(type='SegFPFNMetric', output_dir=str(tmp_path),
                                format_only=True))
    assert run(metric, samples) == {}
    saved = load_label_png(str(tmp_path / 'img_1.png'))
    np.testing.assert_array_equal(saved, samples[1]['pred_sem_seg']['data'][0])
    # keep_results=False also means: only save
    assert METRICS.build(dict(type='SegFPFNMetric', output_dir=str(tmp_path),
                              keep_results=False)).format_only
