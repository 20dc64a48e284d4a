"""8-bit USS embeddings: bounded error, same grid, and smaller files."""
import os

import numpy as np
import pytest

from mars_mm.debias.quantised import (
    QUANTISED_SUFFIX,
    dequantise_embedding,
    load_quantised_embedding,
    quantise_embedding,
    save_quantised_embedding,
)


def embedding(shape=(70, 47, 63), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype(np.float16)


def test_error_is_at_most_half_a_step():
    source = embedding()
    packed = quantise_embedding(source)
    decoded = dequantise_embedding(packed['codes'], packed['offset'], packed['step'],
                                   tuple(packed['grid']))
    assert decoded.shape == source.shape and decoded.dtype == np.float32
    error = np.abs(decoded - source.astype(np.float32))
    assert (error <= packed['step'][:, None, None] / 2 + 1e-6).all()
    # a constant channel decodes exactly
    flat = np.ones((2, 5, 5), np.float32)
    packed = quantise_embedding(flat)
    np.testing.assert_array_equal(
        dequantise_embedding(packed['codes'], packed['offset'], packed['step'],
                             (5, 5)), flat)


def test_pooled_file_decodes_on_the_stored_grid(tmp_path):
    source = embedding((8, 7, 9))
    path = str(tmp_path / ('a' + QUANTISED_SUFFIX))
    save_quantised_embedding(path, source, pool=2)
    with np.load(path) as data:
        assert data['codes'].shape == (8, 4, 5)  # ceil(7/2), ceil(9/2)
    decoded = load_quantised_embedding(path)
    assert decoded.shape == (8, 7, 9)
    # a smooth field survives pooling closely
    yy, xx = np.mgrid[:7, :9]
    smooth = np.stack([yy + xx, yy - xx]).astype(np.float32)
    save_quantised_embedding(path, smooth, pool=2)
    assert np.abs(load_quantised_embedding(path) - smooth).max() < 1.6


def test_files_are_smaller(tmp_path):
    source = embedding()
    lossless = str(tmp_path / 'a.npy')
    np.save(lossless, source)
    sizes = {}
    for pool in (1, 2):
        path = str(tmp_path / f'p{pool}{QUANTISED_SUFFIX}')
        save_quantised_embedding(path, source, pool)
        sizes[pool] = os.path.getsize(path)
    assert sizes[1] < 0.55 * os.path.getsize(lossless)
    assert sizes[2] < 0.3 * sizes[1]


def test_rejects_a_flat_array():
    with pytest.raises(ValueError, match=r'\(D, h, w\)'):
        quantise_embedding(np.zeros((4, 4)))


def test_four_bit_codes_pack_two_per_byte(tmp_path):
    source = embedding((5, 7, 9))  # odd number of codes: the last byte is padded
    packed = quantise_embedding(source, bits=4)
    assert packed['codes'].shape == ((5 * 7 * 9 + 1) // 2, )
    path = str(tmp_path / ('a' + QUANTISED_SUFFIX))
    save_quantised_embedding(path, source, bits=4)
    decoded = load_quantised_embedding(path)
    assert decoded.shape == source.shape
    error = np.abs(decoded - source.astype(np.float32))
    assert (error <= packed['step'][:, None, None] / 2 + 1e-6).all()
    with pytest.raises(ValueError, match='bits'):
        quantise_embedding(source, bits=2)


def test_stage3_reads_compact_files_by_suffix(tmp_path):
    import subprocess
    import sys

    from mars_mm.debias.formats import load_embedding
    source = embedding((6, 4, 5))
    np.save(tmp_path / 'img.npy', source)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))))
    subprocess.run([sys.executable, os.path.join(repo, 'tools', 'uss',
                                                 'compact_embeddings.py'),
                    str(tmp_path), str(tmp_path / 'out'), '--bits', '4'],
                   check=True, capture_output=True)
    path = str(tmp_path / 'out' / ('img' + QUANTISED_SUFFIX))
    decoded = load_embedding(path, image_size=(32, 40), stride=8)
    np.testing.assert_array_equal(decoded, load_quantised_embedding(path))
    assert np.abs(decoded - source.astype(np.float32)).max() < 0.5
    with pytest.raises(ValueError, match='does not match'):
        load_embedding(path, image_size=(64, 40), stride=8)
    (tmp_path / ('bad' + QUANTISED_SUFFIX)).write_bytes(b'not a zip')
    with pytest.raises(ValueError, match='cannot read embedding'):
        load_embedding(str(tmp_path / ('bad' + QUANTISED_SUFFIX)))
