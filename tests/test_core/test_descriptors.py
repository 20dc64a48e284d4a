"""Colour/texture descriptors against OpenCV and a brute-force loop over cells."""
import math

import cv2
import numpy as np
import pytest
import torch

from mars_mm.core.descriptors import colour_texture_descriptors, rgb_to_lab


def _image(height=21, width=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(
        np.uint8)


def test_lab_matches_opencv():
    rgb = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    ours = rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0]
    theirs = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)  # float input: L 0..100
    assert np.abs(ours.permute(1, 2, 0).numpy() - theirs).max() < 0.5


def _lab64(image):
    """CIE L*a*b* (D65) from the textbook formulas, float64, one pixel at a time."""
    out = np.zeros(image.shape, np.float64)
    matrix = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                       [0.019334, 0.119193, 0.950227]])
    white = np.array([0.950456, 1.0, 1.088754])
    for index in np.ndindex(image.shape[:2]):
        c = image[index] / 255.0
        linear = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
        t = matrix @ linear / white
        f = np.where(t > 0.008856, np.cbrt(t), 7.787 * t + 16 / 116)
        out[index] = (116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2]))
    return out


def _brute_force(image, stride=8, bins=6, context=3):
    """Cell statistics written as loops; Lab in float64, Sobel from OpenCV."""
    height, width = image.shape[:2]
    grid_h, grid_w = math.ceil(height / stride), math.ceil(width / stride)
    lab = _lab64(image)
    lab = np.stack([lab[..., 0] / 100, (lab[..., 1] + 128) / 255,
                    (lab[..., 2] + 128) / 255], -1)
    grad_x = cv2.Sobel(lab[..., 0], cv2.CV_64F, 1, 0, ksize=3,
                       borderType=cv2.BORDER_REFLECT_101)
    grad_y = cv2.Sobel(lab[..., 0], cv2.CV_64F, 0, 1, ksize=3,
                       borderType=cv2.BORDER_REFLECT_101)
    out = np.zeros((6 + bins, grid_h, grid_w))
    for i in range(grid_h):
        for j in range(grid_w):
            # edge padding: cell pixels beyond the border repeat the last row/column
            rows = [min(r, height - 1) for r in range(i * stride, (i + 1) * stride)]
            cols = [min(c, width - 1) for c in range(j * stride, (j + 1) * stride)]
            cell = lab[np.ix_(rows, cols)].reshape(-1, 3)
            out[0:3, i, j] = cell.mean(0) * 3
            out[3:6, i, j] = cell.std(0) * 3
            for r in rows:
                for c in cols:
                    gx, gy = grad_x[r, c], grad_y[r, c]
                    angle = math.atan2(gy, gx) % math.pi
                    b = min(int(angle / math.pi * bins), bins - 1)
                    out[6 + b, i, j] += math.hypot(gx, gy) / stride ** 2
    if context == 1:
        return out
    surround = np.zeros_like(out)
    half = context // 2
    for i in range(grid_h):
        for j in range(grid_w):
            block = out[:, max(i - half, 0):i + half + 1, max(j - half, 0):j + half + 1]
            surround[:, i, j] = block.mean(axis=(1, 2))
    return np.concatenate([out, surround])


@pytest.mark.parametrize('context', [1, 3])
def test_cells_equal_a_brute_force_loop(context):
    image = _image()
    ours = colour_texture_descriptors(
        torch.from_numpy(image).permute(2, 0, 1)[None].float(), context=context)[0]
    expected = _brute_force(image, context=context)
    ours = ours.numpy()
    assert ours.shape == expected.shape == ((12 if context == 1 else 24), 3, 4)
    colour = [c for c in range(len(ours)) if c % 12 < 6]
    histogram = [c for c in range(len(ours)) if c % 12 >= 6]
    assert np.abs(ours[colour] - expected[colour]).max() < 1e-4
    # float32 vs float64 may move a pixel whose angle sits on a bin edge to the
    # neighbouring bin: the cell totals agree, and almost every bin agrees exactly
    total = ours[histogram].reshape(-1, 6, 3, 4).sum(1)
    assert np.allclose(total, expected[histogram].reshape(-1, 6, 3, 4).sum(1),
                       atol=1e-4)
    assert (np.abs(ours[histogram] - expected[histogram]) < 1e-4).mean() > 0.95


def test_deterministic_and_shaped_on_any_size():
    image = torch.from_numpy(_image(17, 9, seed=3)).permute(2, 0, 1)[None].float()
    first = colour_texture_descriptors(image)
    assert first.shape == (1, 24, 3, 2)
    assert torch.equal(first, colour_texture_descriptors(image))
    with pytest.raises(ValueError, match='odd'):
        colour_texture_descriptors(image, context=2)
    with pytest.raises(ValueError, match='RGB'):
        colour_texture_descriptors(image[:, :2])
