"""compare_labels on three tiny label pairs whose answer is worked out by hand."""
import json
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
from PIL import Image

from mars_mm.apis.compare_labels import (
    class_names_from,
    compare_labels,
    label_pairs,
)
from mars_mm.apis.compare_report import DIFF_RGB
from mars_mm.utils.io import save_label_png

NAMES = ['background', 'cat', 'dog']
# A and B of three images (254 = removed, 255 = ignore)
PAIRS = {
    'img_a': ([[0, 1, 1], [2, 254, 255]], [[0, 1, 2], [2, 1, 255]]),
    'img_b': ([[1, 1], [0, 0]], [[1, 1], [0, 0]]),
    'img_c': ([[0, 0, 0, 254]], [[1, 1, 0, 0]]),
}


def _write(tmp_path, pairs=PAIRS, palette=(True, False)):
    """Folder A as palette PNGs, folder B as grey PNGs (both formats are read)."""
    dirs = str(tmp_path / 'A'), str(tmp_path / 'B')
    for folder in dirs:
        os.makedirs(folder, exist_ok=True)
    for stem, labels in pairs.items():
        for folder, label, with_palette in zip(dirs, labels, palette):
            save_label_png(osp.join(folder, stem + '.png'),
                           np.asarray(label, np.uint8), palette=with_palette)
    return dirs


def test_counts_agreement_iou_and_special_values_by_hand(tmp_path):
    dir_a, dir_b = _write(tmp_path)
    report = compare_labels(dir_a, dir_b, NAMES)
    # joint counts worked out by hand, rows A, columns B; 254 -> 3, 255 -> 4
    expected = np.zeros((5, 5), np.int64)
    expected[0, 0], expected[0, 1] = 4, 2
    expected[1, 1], expected[1, 2] = 3, 1
    expected[2, 2] = 1
    expected[3, 0], expected[3, 1] = 1, 1
    expected[4, 4] = 1
    np.testing.assert_array_equal(report['counts'], expected)
    summary = report['summary']
    assert summary['pixels'] == 14
    assert summary['agreement'] == pytest.approx(100 * 9 / 14, abs=1e-4)
    rows = {row['value']: row for row in summary['values']}
    # background: both 4, A 6, B 5 -> union 7
    assert rows[0]['iou'] == pytest.approx(100 * 4 / 7, abs=1e-4)
    assert rows[0]['only_a'] == pytest.approx(100 * 2 / 7, abs=1e-4)
    assert rows[0]['only_b'] == pytest.approx(100 * 1 / 7, abs=1e-4)
    assert (rows[0]['pixels_a'], rows[0]['pixels_b'], rows[0]['both']) == (6, 5, 4)
    assert rows[1]['iou'] == pytest.approx(100 * 3 / 7, abs=1e-4)  # 3 / (4 + 6 - 3)
    assert rows[2]['iou'] == pytest.approx(50.0, abs=1e-4)  # 1 / (1 + 2 - 1)
    assert rows[254]['iou'] == 0.0 and rows[254]['pixels_a'] == 2
    assert rows[255]['iou'] == 100.0
    assert summary['miou'] == pytest.approx((400 / 7 + 300 / 7 + 50) / 3, abs=1e-4)
    assert [(c['value_a'], c['value_b'], c['pixels']) for c in
            summary['confusions']] == [(0, 1, 2), (1, 2, 1), (254, 0, 1), (254, 1, 1)]
    special = summary['special']
    assert special['254_in_a']['pixels'] == 2
    assert [(w['value'], w['share']) for w in special['254_in_a']['where']] == [
        (0, 50.0), (1, 50.0)]
    assert special['254_in_b'] == dict(pixels=0, other='a', where=[])
    assert [(w['value'], w['share']) for w in special['255_in_b']['where']] == [
        (255, 100.0)]
    # img_b is identical; img_c differs on 3 of 4 pixels, img_a on 2 of 6
    assert report['num_images'] == 3 and report['differing_images'] == 2
    assert report['gallery'] == [dict(stem='img_c', differing=75.0),
                                 dict(stem='img_a', differing=33.33)]


def test_workers_give_the_same_counts(tmp_path):
    dir_a, dir_b = _write(tmp_path)
    alone = compare_labels(dir_a, dir_b, NAMES)
    pooled = compare_labels(dir_a, dir_b, NAMES, num_workers=2)
    np.testing.assert_array_equal(alone['counts'], pooled['counts'])
    assert alone['gallery'] == pooled['gallery']


def test_gallery_keeps_the_most_different_ties_by_stem(tmp_path):
    pairs = {f'img_{i}': ([[0, 0]], [[0, 1]] if i != 2 else [[1, 1]])
             for i in range(4)}
    dir_a, dir_b = _write(tmp_path, pairs)
    report = compare_labels(dir_a, dir_b, NAMES, gallery_size=2)
    # img_2 differs everywhere; the others tie at 50%: the first stem stays
    assert [e['stem'] for e in report['gallery']] == ['img_2', 'img_0']


def test_report_files_and_gallery_strip(tmp_path):
    dir_a, dir_b = _write(tmp_path)
    images = tmp_path / 'images'
    images.mkdir()
    Image.fromarray(np.full((1, 4, 3), 200, np.uint8)).save(images / 'img_c.jpg')
    out = str(tmp_path / 'report')
    compare_labels(dir_a, dir_b, NAMES, out_dir=out, image_dir=str(images))
    assert sorted(os.listdir(osp.join(out, 'gallery'))) == ['00_img_c.png',
                                                           '01_img_a.png']
    with open(osp.join(out, 'report.json')) as handle:
        saved = json.load(handle)
    assert saved['gallery'][0] == dict(stem='img_c', differing=75.0,
                                       png='gallery/00_img_c.png', with_image=True)
    assert saved['gallery'][1]['with_image'] is False
    # img_c: image | A | difference | B, 4 px wide panels and 4 px gaps
    strip = np.asarray(Image.open(osp.join(out, 'gallery', '00_img_c.png')))
    assert strip.shape == (1, 4 * 4 + 3 * 4, 3)
    diff = strip[0, 2 * (4 + 4):2 * (4 + 4) + 4]
    assert [tuple(p) == DIFF_RGB for p in diff] == [True, True, False, True]
    strip = np.asarray(Image.open(osp.join(out, 'gallery', '01_img_a.png')))
    assert strip.shape == (2, 3 * 3 + 2 * 4, 3)  # no photo of img_a: 3 panels
    with open(osp.join(out, 'confusion.csv')) as handle:
        lines = handle.read().splitlines()
    assert lines[0] == 'A \\ B,background,cat,dog,removed (254),ignore (255)'
    assert lines[1] == 'background,4,2,0,0,0'
    assert lines[4] == 'removed (254),1,1,0,0,0'
    markdown = open(osp.join(out, 'report.md')).read()
    assert '64.29% of pixels agree' in markdown
    assert '- 254 in A (2 pixels): B has background 50.00%, cat 50.00%.' in markdown
    assert '![img_c](gallery/00_img_c.png)' in markdown
    assert '<img src="gallery/00_img_c.png"' in open(osp.join(out,
                                                             'report.html')).read()


def test_missing_counterpart_names_the_file(tmp_path):
    dir_a, dir_b = _write(tmp_path)
    os.remove(osp.join(dir_b, 'img_b.png'))
    with pytest.raises(FileNotFoundError) as err:
        compare_labels(dir_a, dir_b, NAMES)
    assert osp.join(dir_a, 'img_b.png') in str(err.value)
    assert osp.join(dir_b, 'img_b.png') in str(err.value)
    report = compare_labels(dir_a, dir_b, NAMES, missing='skip')
    assert report['num_images'] == 2
    assert report['skipped'] == dict(only_a=['img_b'], only_b=[])


def test_size_mismatch_and_values_out_of_range_name_the_file(tmp_path):
    dir_a, dir_b = _write(tmp_path)
    save_label_png(osp.join(dir_b, 'img_b.png'), np.zeros((3, 2), np.uint8))
    with pytest.raises(ValueError, match='size mismatch') as err:
        compare_labels(dir_a, dir_b, NAMES)
    assert osp.join(dir_a, 'img_b.png') in str(err.value)
    assert osp.join(dir_b, 'img_b.png') in str(err.value)
    save_label_png(osp.join(dir_b, 'img_b.png'), np.array([[1, 7], [0, 200]],
                                                          np.uint8))
    with pytest.raises(ValueError) as err:
        compare_labels(dir_a, dir_b, NAMES, num_workers=2)
    assert f'{osp.join(dir_b, "img_b.png")}: values [7, 200] outside 0..2' in \
        str(err.value)


def test_empty_or_missing_folders(tmp_path):
    dir_a, _ = _write(tmp_path)
    with pytest.raises(FileNotFoundError, match='label folder not found'):
        label_pairs(dir_a, str(tmp_path / 'nowhere'))
    other = tmp_path / 'other'
    other.mkdir()
    save_label_png(str(other / 'x.png'), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match='share no'):
        label_pairs(dir_a, str(other), missing='skip')


def test_class_names(tmp_path):
    assert len(class_names_from('voc')) == 21 and len(class_names_from('coco')) == 81
    assert class_names_from('3') == ['background', '1', '2']
    path = tmp_path / 'classes.txt'
    path.write_text('boat\ntrain\n')
    assert class_names_from(str(path)) == ['background', 'boat', 'train']
    with pytest.raises(FileNotFoundError, match='--classes nope'):
        class_names_from('nope')


def test_tool_prints_the_table(tmp_path, repo_root, monkeypatch, capsys):
    dir_a, dir_b = _write(tmp_path)
    (tmp_path / 'classes.txt').write_text('cat\ndog\n')
    out = str(tmp_path / 'out')
    monkeypatch.setattr(sys, 'argv', [
        'compare_labels.py', dir_a, dir_b, '--classes', str(tmp_path / 'classes.txt'),
        '--out', out])
    runpy.run_path(osp.join(repo_root, 'tools', 'analysis', 'compare_labels.py'),
                   run_name='__main__')
    printed = capsys.readouterr().out
    assert '3 images, 14 pixels: 64.29% agree, mean IoU of A vs B 50.00' in printed
    assert osp.isfile(osp.join(out, 'report.html'))
