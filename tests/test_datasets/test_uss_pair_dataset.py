"""USSPairDataset: kNN file format, stem matching and item roles."""
import os.path as osp

import numpy as np
import pytest
from mmengine.registry import init_default_scope

from mars_mm.datasets.uss_pair_dataset import (
    neighbours_for,
    read_knn_file,
    write_knn_file,
)
from mars_mm.registry import DATASETS
from tests.fixtures import make_tiny_voc

init_default_scope('mmseg')

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
            dict(type='PackSegInputs')]


def inner_dataset(root):
    return dict(type='WSSSVOCDataset', data_root=root, xml_dir=None,
                ann_file='ImageSets/Segmentation/train.txt', pipeline=PIPELINE)


def test_knn_file_roundtrip_and_errors(tmp_path):
    path = str(tmp_path / 'knn.npz')
    indices = np.array([[1, 2], [0, 2], [1, 0]])
    write_knn_file(path, indices, ['a', 'b', 'c'])
    loaded, stems = read_knn_file(path)
    np.testing.assert_array_equal(loaded, indices)
    assert stems.tolist() == ['a', 'b', 'c']
    with pytest.raises(FileNotFoundError, match='precompute_knn'):
        read_knn_file(str(tmp_path / 'missing.npz'))
    np.savez(str(tmp_path / 'bad.npz'), indices=np.array([[5]]), stems=np.array(['a']))
    with pytest.raises(ValueError, match='bad.npz'):
        read_knn_file(str(tmp_path / 'bad.npz'))
    np.savez(str(tmp_path / 'nokeys.npz'), data=np.zeros(1))
    with pytest.raises(ValueError, match='"indices" and'):
        read_knn_file(str(tmp_path / 'nokeys.npz'))


def test_neighbours_matched_by_stem():
    # the file lists images in another order and one extra image
    knn_stems = ['c', 'x', 'a', 'b']
    knn_indices = np.array([[2, 1], [0, 2], [3, 0], [1, 2]])
    result = neighbours_for(['a', 'b', 'c'], knn_indices, knn_stems)
    # a -> [b, c]; b -> [x (dropped), a]; c -> [a, x (dropped)]
    assert [r.tolist() for r in result] == [[1, 2], [0], [0]]
    with pytest.raises(KeyError, match='no neighbours for image d'):
        neighbours_for(['a', 'd'], knn_indices, knn_stems, 'f.npz')


def test_items_hold_anchor_positive_negative(tmp_path):
    root = str(tmp_path / 'voc')
    stems = make_tiny_voc(root, num_train=4, num_val=1)[:4]
    knn = str(tmp_path / 'knn.npz')
    # image i's only neighbour is image (i + 1) % 4
    write_knn_file(knn, np.array([[1], [2], [3], [0]]), stems)
    dataset = DATASETS.build(dict(type='USSPairDataset', dataset=inner_dataset(root),
                                  knn_file=knn))
    assert len(dataset) == 4
    assert dataset.metainfo['classes'][0] == 'background'
    for index in range(4):
        item = dataset[index]
        roles = [s.metainfo['uss_role'] for s in item['data_samples']]
        assert roles == ['anchor', 'positive', 'negative']
        names = [osp.splitext(osp.basename(s.img_path))[0]
                 for s in item['data_samples']]
        assert names[0] == stems[index]
        assert names[1] == stems[(index + 1) % 4]
        assert names[2] != stems[index]
        assert all(tuple(x.shape) == (3, 32, 32) for x in item['inputs'])
    without = DATASETS.build(dict(type='USSPairDataset', dataset=inner_dataset(root),
                                  knn_file=knn, with_negative=False))
    assert len(without[0]['inputs']) == 2
