"""Chunked cosine top-k against brute force."""
import numpy as np
import pytest
import torch

from mars_mm.core.knn import centre_features, cosine_topk


def brute_force_topk(features: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    rows = []
    for i, query in enumerate(features):
        sims = []
        for j, key in enumerate(features):
            if exclude_self and i == j:
                continue
            cos = query @ key / (np.linalg.norm(query) * np.linalg.norm(key))
            sims.append((-cos, j))
        rows.append([j for _, j in sorted(sims)[:k]])
    return np.array(rows)


@pytest.mark.parametrize('chunk_size', [1, 3, 7, 100])
@pytest.mark.parametrize('exclude_self', [True, False])
def test_topk_equals_brute_force(chunk_size, exclude_self):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(23, 5))
    result = cosine_topk(torch.from_numpy(features), 4, chunk_size=chunk_size,
                         exclude_self=exclude_self)
    assert result.dtype == np.int64
    np.testing.assert_array_equal(result, brute_force_topk(features, 4, exclude_self))


def test_self_never_returned():
    features = torch.randn(10, 3)
    result = cosine_topk(features, 9, chunk_size=4)
    for row, neighbours in enumerate(result):
        assert row not in neighbours
        assert len(set(neighbours.tolist())) == 9


def test_too_many_neighbours():
    with pytest.raises(ValueError, match='neighbours among 4'):
        cosine_topk(torch.randn(5, 3), 5)


def test_centring_removes_common_offset():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(12, 4)) + 50.0  # raw cosines all ~1
    centred = centre_features(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(centred.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_array_equal(
        cosine_topk(torch.from_numpy(centred), 3),
        brute_force_topk(features - features.mean(axis=0), 3, True))
