"""STEGO's correlation loss against a brute-force loop over sampled points."""
import math

import pytest
import torch

from mars_mm.core.correlation import (
    CorrelationLossWeights,
    contrastive_correlation_loss,
    derangement,
    pointwise_centre,
    sample_coords,
)


def bilinear_corners_border(fmap, x, y):
    """One vector of ``fmap`` (C, H, W) at (x, y) in [-1, 1], corners aligned,
    coordinates clamped to the border: written out by hand."""
    _, height, width = fmap.shape
    px = min(max((x + 1) / 2 * (width - 1), 0.0), width - 1)
    py = min(max((y + 1) / 2 * (height - 1), 0.0), height - 1)
    x0, y0 = int(math.floor(px)), int(math.floor(py))
    x1, y1 = min(x0 + 1, width - 1), min(y0 + 1, height - 1)
    wx, wy = px - x0, py - y0
    return ((1 - wx) * (1 - wy) * fmap[:, y0, x0] + wx * (1 - wy) * fmap[:, y0, x1]
            + (1 - wx) * wy * fmap[:, y1, x0] + wx * wy * fmap[:, y1, x1])


def cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def brute_force_term(feats_a, feats_b, codes_a, codes_b, coords_a, coords_b, shift):
    """mean(-max(cd, 0) * (fd_centred - shift)) with explicit loops."""
    batch, size = coords_a.shape[0], coords_a.shape[1]
    points = [(h, w) for h in range(size) for w in range(size)]
    fd = {}
    for n in range(batch):
        fa = [bilinear_corners_border(feats_a[n], *map(float, coords_a[n, h, w]))
              for h, w in points]
        fb = [bilinear_corners_border(feats_b[n], *map(float, coords_b[n, i, j]))
              for i, j in points]
        for q, _ in enumerate(points):
            for k, _ in enumerate(points):
                fd[n, q, k] = cosine(fa[q], fb[k])
    global_mean = sum(fd.values()) / len(fd)
    total = 0.0
    for n in range(batch):
        ca = [bilinear_corners_border(codes_a[n], *map(float, coords_a[n, h, w]))
              for h, w in points]
        cb = [bilinear_corners_border(codes_b[n], *map(float, coords_b[n, i, j]))
              for i, j in points]
        for q in range(len(points)):
            row_mean = sum(fd[n, q, k] for k in range(len(points))) / len(points)
            for k in range(len(points)):
                centred = fd[n, q, k] - row_mean + global_mean
                total += -max(cosine(ca[q], cb[k]), 0.0) * (centred - shift)
    return total / (batch * len(points) ** 2)


def test_loss_equals_brute_force_double_loop():
    torch.manual_seed(0)
    batch, channels, dims, size = 3, 4, 3, 3
    feats = torch.randn(batch, channels, 5, 6, dtype=torch.float64)
    codes = torch.randn(batch, dims, 5, 6, dtype=torch.float64)
    pos_feats = torch.randn(batch, channels, 5, 6, dtype=torch.float64)
    pos_codes = torch.randn(batch, dims, 5, 6, dtype=torch.float64)
    # points slightly outside [-1, 1] exercise the border padding
    coords = torch.rand(batch, size, size, 2, dtype=torch.float64) * 2.2 - 1.1
    pos_coords = torch.rand(batch, size, size, 2, dtype=torch.float64) * 2 - 1
    negs = [torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1])]
    weights = CorrelationLossWeights(self_weight=0.5, knn_weight=0.3, rand_weight=0.7,
                                     self_shift=0.2, knn_shift=0.1, rand_shift=0.4)
    result = contrastive_correlation_loss(feats, codes, pos_feats, pos_codes, coords,
                                          pos_coords, negs, weights=weights)
    expected_self = brute_force_term(feats, feats, codes, codes, coords, coords, 0.2)
    expected_knn = brute_force_term(feats, pos_feats, codes, pos_codes, coords,
                                    pos_coords, 0.1)
    expected_rand = sum(
        brute_force_term(feats, feats[index], codes, codes[index], coords,
                         pos_coords, 0.4) for index in negs) / len(negs)
    assert float(result['self']) == pytest.approx(expected_self, abs=1e-9)
    assert float(result['knn']) == pytest.approx(expected_knn, abs=1e-9)
    assert float(result['rand']) == pytest.approx(expected_rand, abs=1e-9)
    assert float(result['loss_self']) == pytest.approx(0.5 * expected_self, abs=1e-9)
    assert float(result['loss_knn']) == pytest.approx(0.3 * expected_knn, abs=1e-9)
    assert float(result['loss_rand']) == pytest.approx(0.7 * expected_rand, abs=1e-9)


def test_negative_pool_with_extra_images():
    torch.manual_seed(1)
    feats, codes = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    extra_feats, extra_codes = torch.randn(2, 3, 4, 4), torch.randn(2, 2, 4, 4)
    coords = sample_coords(2, 2, torch.device('cpu'))
    pos_coords = sample_coords(2, 2, torch.device('cpu'))
    pool_feats = torch.cat([feats, extra_feats])
    pool_codes = torch.cat([codes, extra_codes])
    index = torch.tensor([3, 2])  # both anchors paired with extra images
    result = contrastive_correlation_loss(feats, codes, feats, codes, coords,
                                          pos_coords, [index], pool_feats, pool_codes)
    expected = brute_force_term(feats, extra_feats[[1, 0]], codes, extra_codes[[1, 0]],
                                coords, pos_coords, 0.46)
    assert float(result['rand']) == pytest.approx(expected, abs=1e-5)


def test_gradient_reaches_codes_only():
    feats = torch.randn(2, 4, 5, 5, requires_grad=True)
    codes = torch.randn(2, 3, 5, 5, requires_grad=True)
    coords = sample_coords(2, 3, torch.device('cpu'))
    result = contrastive_correlation_loss(feats, codes, feats, codes, coords, coords,
                                          [torch.tensor([1, 0])])
    (result['loss_self'] + result['loss_knn'] + result['loss_rand']).backward()
    assert feats.grad is None
    assert codes.grad is not None and codes.grad.abs().sum() > 0


def test_pointwise_centre_row_means_equal_global_mean():
    fd = torch.randn(2, 3, 3, 3, 3)
    centred = pointwise_centre(fd)
    row_means = centred.mean(dim=(3, 4))
    assert torch.allclose(row_means, torch.full_like(row_means, float(fd.mean())),
                          atol=1e-6)


@pytest.mark.parametrize('size', [2, 3, 7, 16])
def test_derangement_has_no_fixed_point(size):
    for seed in range(20):
        perm = derangement(size, torch.device('cpu'),
                           torch.Generator().manual_seed(seed))
        assert sorted(perm.tolist()) == list(range(size))
        assert all(perm[i] != i for i in range(size))


def test_derangement_needs_two_images():
    with pytest.raises(ValueError, match='at least 2'):
        derangement(1, torch.device('cpu'))


def test_sample_coords_in_range():
    coords = sample_coords(4, 11, torch.device('cpu'))
    assert coords.shape == (4, 11, 11, 2)
    assert coords.min() >= -1 and coords.max() <= 1
