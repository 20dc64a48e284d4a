"""Batched spherical k-means: recovery, Lloyd fixed point, degenerate groups."""
import itertools

import numpy as np
import pytest
import torch

from mars_mm.core.kmeans import batched_spherical_kmeans, spherical_kmeans


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _clusters(seed, num_clusters=3, per_cluster=40, dim=16, noise=0.05):
    rng = np.random.default_rng(seed)
    centres = _unit(rng.normal(size=(num_clusters, dim)))
    truth = np.repeat(np.arange(num_clusters), per_cluster)
    points = _unit(centres[truth] + noise * rng.normal(size=(len(truth), dim)))
    return torch.tensor(points, dtype=torch.float32), truth, centres


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_recovers_well_separated_clusters(seed):
    points, truth, centres = _clusters(seed)
    result = spherical_kmeans(points, 3, seed=seed)
    assert result.valid.all()
    found = result.assignment.numpy()
    # the partition equals the truth up to a relabelling
    best = max(np.mean(np.asarray(perm)[found] == truth)
                for perm in itertools.permutations(range(3)))
    assert best == 1.0
    cosine = result.centroids.numpy() @ centres.T
    assert np.all(cosine.max(axis=1) > 0.99)
    assert sorted(result.sizes.tolist()) == [40, 40, 40]


def test_result_is_a_lloyd_fixed_point():
    rng = np.random.default_rng(3)
    points = torch.tensor(_unit(rng.normal(size=(60, 5))), dtype=torch.float32)
    result = spherical_kmeans(points, 4, num_iters=100)
    centroids = result.centroids.numpy()
    assignment = result.assignment.numpy()
    # independent check: each point on its most similar centroid, each centroid the
    # normalised mean of its members, sizes = member counts
    np.testing.assert_array_equal(assignment,
                                  (points.numpy() @ centroids.T).argmax(axis=1))
    for k in range(4):
        members = points.numpy()[assignment == k]
        np.testing.assert_allclose(centroids[k], _unit(members.sum(0)), atol=1e-5)
        assert result.sizes[k] == len(members)


def test_fixed_seed_is_reproducible():
    points, _, _ = _clusters(4, noise=0.5)
    first = spherical_kmeans(points, 3, seed=7)
    second = spherical_kmeans(points, 3, seed=7)
    assert torch.equal(first.centroids, second.centroids)


def test_fewer_points_than_k_gives_fewer_centroids():
    points, _, _ = _clusters(5)
    result = spherical_kmeans(points[:2], 3)
    assert result.valid.tolist() == [True, True, False]
    assert result.sizes.tolist() == [1, 1, 0]
    assert torch.all(result.centroids[2] == 0)
    # duplicated points count once
    result = spherical_kmeans(points[:1].repeat(5, 1), 2)
    assert result.valid.tolist() == [True, False]
    assert result.sizes.tolist() == [5, 0]


def test_batch_with_empty_group_and_different_k():
    points, _, _ = _clusters(6)
    batch = torch.zeros(3, 120, points.shape[1])
    mask = torch.zeros(3, 120, dtype=torch.bool)
    batch[0] = points
    mask[0] = True
    batch[2, :80] = points[:80]
    mask[2, :80] = True  # group 1 stays empty
    result = batched_spherical_kmeans(batch, mask, [3, 2, 1])
    assert result.valid.tolist() == [[True, True, True], [False, False, False],
                                     [True, False, False]]
    assert result.sizes[0].sum() == 120 and result.sizes[2].tolist() == [80, 0, 0]
    assert torch.all(result.assignment[1] == -1)
    assert torch.all(result.assignment[2, 80:] == -1)
    # group 2 with K=1: the normalised mean of its points
    np.testing.assert_allclose(result.centroids[2, 0].numpy(),
                               _unit(points[:80].numpy().sum(0)), atol=1e-5)
