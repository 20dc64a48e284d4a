"""Stage 3 files: checked loaders, the chunked .npy round trip, centroid files."""
import numpy as np
import pytest

from mars_mm.core.debias import ImageCentroids
from mars_mm.debias import formats
from mars_mm.utils.io import save_label_png


def test_loaders_name_the_file(tmp_path):
    label = np.zeros((16, 24), np.uint8)
    label[0, :3] = [3, 254, 255]
    save_label_png(str(tmp_path / 'ok.png'), label)
    np.testing.assert_array_equal(formats.load_pseudo_label(str(tmp_path / 'ok.png'),
                                                            4), label)
    with pytest.raises(ValueError, match='ok.png.*value 3 outside 0..2'):
        formats.load_pseudo_label(str(tmp_path / 'ok.png'), 3)
    small = tmp_path / 'small.npy'
    np.save(small, np.zeros((8, 3, 3), np.float16))
    with pytest.raises(ValueError, match='small.npy.*does not match'):
        formats.load_embedding(str(small), (48, 64), 8)
    assert formats.load_embedding(str(small), (24, 17), 8).shape == (8, 3, 3)
    with pytest.raises(FileNotFoundError, match='missing.npy'):
        formats.load_embedding(str(tmp_path / 'missing.npy'))
    np.save(tmp_path / 'flat.npy', np.zeros((8, 9), np.float32))
    with pytest.raises(ValueError, match='flat.npy.*float \\(D, h, w\\)'):
        formats.load_embedding(str(tmp_path / 'flat.npy'))
    np.save(tmp_path / 'nan.npy', np.full((2, 1, 1), np.nan, np.float32))
    with pytest.raises(ValueError, match='nan.npy.*NaN'):
        formats.load_embedding(str(tmp_path / 'nan.npy'))
    with pytest.raises(FileNotFoundError, match='no.jpg'):
        formats.load_rgb(str(tmp_path / 'no.jpg'))


def test_raw_rows_to_npy_and_back_in_chunks(tmp_path):
    rows = np.arange(7 * 3, dtype=np.float32).reshape(7, 3)
    raw = tmp_path / 'vectors.npy.raw'
    raw.write_bytes(rows[:4].tobytes() + rows[4:].tobytes())
    path = str(tmp_path / 'vectors.npy')
    formats.npy_from_raw(str(raw), path, rows.shape, np.float32, block_bytes=5)
    assert not raw.exists()
    np.testing.assert_array_equal(np.load(path), rows)
    chunks = list(formats.read_npy_chunks(path, chunk_rows=3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), rows)
    np.save(tmp_path / 'cube.npy', np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match='2-D'):
        next(formats.read_npy_chunks(str(tmp_path / 'cube.npy'), 2))


def test_centroid_files_round_trip(tmp_path):
    centroids = ImageCentroids(np.array([0, 1]), np.eye(2, dtype=np.float32),
                               np.array([5, 7]))
    path = str(tmp_path / 'centroids' / 'a.npz')
    formats.save_image_centroids(path, centroids)
    for saved, expected in zip(formats.load_image_centroids(path), centroids):
        np.testing.assert_array_equal(saved, expected)
    arrays = dict(stems=np.array(['a']), debiased=np.ones((2, 2), np.float32),
                  debiased_valid=np.array([False, True]),
                  embedding_mean=np.zeros(0, np.float32))
    summary = str(tmp_path / 'centroids.npz')
    formats.save_centroid_file(summary, arrays)
    loaded = formats.load_centroid_file(summary)
    assert loaded['embedding_mean'] is None  # no centring
    np.testing.assert_array_equal(loaded['debiased_valid'], [False, True])
    assert 'stems' not in formats.load_centroid_summary(summary)
    formats.save_centroid_file(summary, dict(stems=np.array(['a'])))
    with pytest.raises(ValueError, match='not a MARS centroid file'):
        formats.load_centroid_file(summary)
    with pytest.raises(FileNotFoundError, match='nowhere.npz'):
        formats.load_centroid_file(str(tmp_path / 'nowhere.npz'))
