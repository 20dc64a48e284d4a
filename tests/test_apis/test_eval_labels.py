"""Label evaluation: equal to mmseg's IoUMetric, hand-worked FP/FN, bad inputs."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine import Config
from mmengine.registry import init_default_scope

import mars_mm  # noqa: F401  (registration)
from mars_mm.apis.eval_labels import eval_labels, evaluate_label_files, score_pair
from mars_mm.core.metrics import scores_from_confusion
from mars_mm.datasets.generators.planted_bias import generate_planted_bias
from mars_mm.registry import METRICS
from mars_mm.utils.io import save_label_png

init_default_scope('mmseg')


def _random_pairs(tmp_path, num_classes, count=5, seed=0):
    rng = np.random.default_rng(seed)
    pairs, arrays = [], []
    for index in range(count):
        shape = (int(rng.integers(8, 20)), int(rng.integers(8, 20)))
        gt = rng.integers(0, num_classes, shape).astype(np.uint8)
        gt[rng.random(shape) < 0.1] = 255
        pred = gt.copy()
        noise = rng.random(shape) < 0.4
        pred[noise] = rng.integers(0, num_classes, int(noise.sum()))
        pred[pred == 255] = 0
        gt_path, pred_path = str(tmp_path / f'gt{index}.png'), \
            str(tmp_path / 'pred' / f'{index}.png')
        save_label_png(gt_path, gt)
        save_label_png(pred_path, pred)
        pairs.append((gt_path, pred_path))
        arrays.append((gt, pred))
    return pairs, arrays


@pytest.mark.parametrize('num_workers', [0, 2])
def test_equals_mmseg_iou_metric(tmp_path, num_workers):
    num_classes = 6
    pairs, arrays = _random_pairs(tmp_path, num_classes)
    counts = evaluate_label_files(pairs, num_classes, num_workers=num_workers,
                                  chunk_size=2)
    ours = scores_from_confusion(counts)

    metric = METRICS.build(dict(type='IoUMetric', iou_metrics=['mIoU']))
    metric.dataset_meta = dict(classes=[f'c{i}' for i in range(num_classes)])
    metric.process({}, [
        dict(pred_sem_seg=dict(data=torch.from_numpy(pred)[None].long()),
             gt_sem_seg=dict(data=torch.from_numpy(gt)[None].long()))
        for gt, pred in arrays])
    totals = [sum(r[i] for r in metric.results) for i in range(4)]
    reference = metric.total_area_to_metrics(*totals, metrics=['mIoU'])
    np.testing.assert_allclose(ours['iou'], np.asarray(reference['IoU']) * 100,
                               rtol=1e-6)
    assert ours['miou'] == pytest.approx(
        float(metric.compute_metrics(metric.results)['mIoU']), abs=0.006)


def test_fp_fn_hand_worked():
    # class 1: T = 4 true pixels, P = 3 predicted, TP = 2, union = 5
    gt = np.array([[1, 1, 1, 1], [0, 0, 0, 255]], np.uint8)
    pred = np.array([[1, 1, 0, 0], [1, 0, 0, 1]], np.uint8)   # last pixel ignored
    scores = scores_from_confusion(score_pair(gt, pred, 2))
    assert scores['iou'][1] == pytest.approx(100 * 2 / 5)
    assert scores['fp'][1] == pytest.approx(100 * 1 / 5)
    assert scores['fn'][1] == pytest.approx(100 * 2 / 5)
    # background: T = 3, P = 4, TP = 2, union = 5
    assert scores['iou'][0] == pytest.approx(100 * 2 / 5)


def test_special_values_background_or_ignored():
    gt = np.array([[1, 1, 0, 0]], np.uint8)
    pred = np.array([[1, 254, 255, 0]], np.uint8)
    as_background = score_pair(gt, pred, 2, special='background')
    np.testing.assert_array_equal(as_background, [[2, 0], [1, 1]])
    ignored = score_pair(gt, pred, 2, special='ignore')
    np.testing.assert_array_equal(ignored, [[1, 0], [0, 1]])


def test_bad_inputs_name_the_file(tmp_path):
    pairs, _ = _random_pairs(tmp_path, 4, count=2)
    with pytest.raises(FileNotFoundError, match=r'pred/9\.png'):
        evaluate_label_files(pairs + [(pairs[0][0], str(tmp_path / 'pred/9.png'))], 4)
    save_label_png(pairs[1][1], np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match=r'pred/1\.png: size \(3, 3\) differs'):
        evaluate_label_files(pairs, 4)
    bad = np.zeros((4, 4), np.uint8)
    bad[0, 0] = 9
    with pytest.raises(ValueError, match=r'p\.png: label values \[9\]'):
        score_pair(np.zeros((4, 4), np.uint8), bad, 4, pred_path='p.png')


def test_gt_against_itself_and_subset(tmp_path, repo_root):
    root = str(tmp_path / 'pb')
    generate_planted_bias(root, num_train=6, num_val=2, image_size=(32, 32))
    config = Config.fromfile(osp.join(repo_root, 'configs/_base_/datasets/'
                                      'planted_bias.py'))
    gt_dir = osp.join(root, 'SegmentationClass')
    summary = eval_labels(gt_dir, config, data_root=root,
                          out=str(tmp_path / 's.json'))
    assert summary['miou'] == 100.0 and summary['num_images'] == 6
    with open(tmp_path / 's.json') as handle:
        assert json.load(handle)['per_class']['boat']['fp'] == 0.0
    subset = tmp_path / 'subset.txt'
    subset.write_text('000001\n000003\n')
    summary = eval_labels(gt_dir, config, data_root=root, split_file=str(subset))
    assert summary['num_images'] == 2
    summary = eval_labels(gt_dir, config, split='val', data_root=root)
    assert summary['num_images'] == 2 and summary['miou'] == 100.0
