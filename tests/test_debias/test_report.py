"""The bias report: its numbers against a recount, its files and its gallery."""
import json
import os.path as osp

import numpy as np

from mars_mm.debias.figures import colourise_label, plot_gallery
from mars_mm.debias.job import debias_pseudo_labels
from mars_mm.debias.report import _gallery_order, bias_report, removal_stats
from mars_mm.utils.io import load_label_png
from tests.debias_fixtures import (
    NUM_CLASSES,
    gallery_rows,
    scene_samples,
    scene_settings,
)


def test_report_numbers_and_files(scene, tmp_path):
    settings = scene_settings(scene, tmp_path, refinement=dict(type='threshold'))
    samples = scene_samples(scene)
    debias_pseudo_labels(samples, settings)
    report_dir = tmp_path / 'report'
    for name in ('report.md', 'report.json', 'removed.png', 'distances.png',
                 'gallery.png'):
        assert (report_dir / name).stat().st_size > 0, name
    report = json.loads((report_dir / 'report.json').read_text())
    foreground = np.zeros(NUM_CLASSES, int)
    removed = np.zeros(NUM_CLASSES, int)
    for stem in scene['stems']:
        baseline = load_label_png(osp.join(scene['pseudo'], stem + '.png'))
        label = load_label_png(settings.output_label_path(stem))
        for class_id in (1, 2):
            foreground[class_id] += np.sum(baseline == class_id)
            removed[class_id] += np.sum((baseline == class_id) & (label == 254))
    for row in report['classes']:
        assert row['foreground_pixels'] == foreground[row['class_id']]
        assert row['removed_pixels'] == removed[row['class_id']]
    assert report['gt']['debiased']['miou'] > report['gt']['baseline']['miou'] + 10
    assert len(report['gallery']) == 3
    assert gallery_rows(str(report_dir / 'gallery.png')) == 3
    fractions = [entry['removed_fraction'] for entry in report['gallery']]
    assert fractions[0] == max(fractions)
    assert '| boat |' in (report_dir / 'report.md').read_text()
    assert report['settings']['tag_source'] == 'img_tags'

    # a re-drawn report follows the new gallery size; gallery=0 draws none
    settings.report['gallery'] = 1
    report = bias_report(samples, settings)
    assert len(report['gallery']) == 1
    assert gallery_rows(str(report_dir / 'gallery.png')) == 1
    settings.report['gallery'] = 0
    assert bias_report(samples, settings, str(tmp_path / 'none'))['gallery'] == []
    assert not (tmp_path / 'none' / 'gallery.png').exists()


def test_removal_stats_hand_worked():
    baseline = np.array([[0, 1, 1, 2, 255, 254]])
    debiased = np.array([[0, 254, 1, 254, 255, 254]])
    stats = removal_stats(baseline, debiased, num_classes=3)
    np.testing.assert_array_equal(stats['foreground'], [0, 2, 1])
    np.testing.assert_array_equal(stats['removed'], [0, 1, 1])


def test_gallery_order_takes_classes_in_turn():
    # per class: (key, sample) heaps; class 1 holds the worst image
    heaps = {1: [((0.9, 0), 'a'), ((0.5, -1), 'b'), ((0.4, -2), 'c')],
             2: [((0.6, -3), 'd')]}
    chosen = [sample for _, sample in _gallery_order(heaps, 3)]
    assert chosen == ['a', 'd', 'b']


def test_plot_gallery_draws_one_row_per_entry(tmp_path):
    rng = np.random.default_rng(0)
    label = np.zeros((24, 32), np.uint8)
    label[6:18, 8:24] = 1
    label[0] = 255
    entry = dict(stem='x', removed_fraction=0.25,
                 image=rng.integers(0, 255, (24, 32, 3), dtype=np.uint8),
                 baseline=label, debias_map=rng.random((24, 32), np.float32),
                 debiased=np.where(label == 1, 254, label).astype(np.uint8))
    for rows in (1, 2, 4):
        path = str(tmp_path / f'gallery{rows}.png')
        plot_gallery([entry] * rows, ['background', 'boat'], path, dpi=40)
        assert gallery_rows(path) == rows
    colours = colourise_label(np.array([[0, 1, 254, 255]], np.uint8))
    np.testing.assert_array_equal(colours[0, 2], [255, 0, 255])  # removed: magenta
