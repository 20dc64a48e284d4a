"""Hand-made dense descriptors: colour and texture statistics on a stride grid.

A training-free Stage 2 embedding for machines without self-supervised weights
(CPU demos, the planted-bias family). What MARS needs from an embedding is that a
context region (water, sky, rails) looks like the background it also appears as
elsewhere, and unlike the object it accompanies; local colour and texture
statistics carry exactly that on the planted-bias datasets, measured against
random convolutional features and CAM-backbone features
(``configs/uss/README.md``, "CPU Stage 2").

Per ``stride x stride`` cell of an image the descriptor holds

* the mean and standard deviation of CIE L*a*b* (L / 100, (a + 128) / 255,
  (b + 128) / 255, each times 3 so colour and texture weigh alike);
* a histogram of Sobel gradient orientations of L (``bins`` unsigned bins over
  [0, pi), each pixel voting its gradient magnitude, averaged over the cell);

and, with ``context > 1``, the same values averaged over the ``context x context``
neighbouring cells (appended), so a cell also describes its surroundings.
"""
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# sRGB (D65) -> XYZ, and the D65 white point (CIE 1931, 2 degrees)
_RGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
_WHITE = (0.950456, 1.0, 1.088754)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] to CIE L*a*b* (D65).

    Args:
        rgb: ``(B, 3, H, W)`` float.

    Returns:
        Tensor: ``(B, 3, H, W)``: L in [0, 100], a and b about [-128, 127].
    """
    linear = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    matrix = rgb.new_tensor(_RGB_TO_XYZ)
    xyz = torch.einsum('ij,bjhw->bihw', matrix, linear)
    ratio = xyz / rgb.new_tensor(_WHITE)[None, :, None, None]
    f = torch.where(ratio > 0.008856, ratio.clamp_min(1e-12) ** (1 / 3),
                    7.787 * ratio + 16 / 116)
    lightness = 116 * f[:, 1] - 16
    return torch.stack([lightness, 500 * (f[:, 0] - f[:, 1]),
                        200 * (f[:, 1] - f[:, 2])], dim=1)


def _pad_to_grid(tensor: Tensor, stride: int) -> Tensor:
    height, width = tensor.shape[-2:]
    pad_h = -height % stride
    pad_w = -width % stride
    if pad_h or pad_w:
        # replicate: border cells describe the image, not a zero frame
        tensor = F.pad(tensor, (0, pad_w, 0, pad_h), mode='replicate')
    return tensor


def _snap(grad: Tensor, eps: float = 1e-6) -> Tensor:
    return torch.where(grad.abs() < eps, torch.zeros_like(grad), grad)


def colour_texture_descriptors(rgb: Tensor, stride: int = 8, bins: int = 6,
                               context: int = 3) -> Tensor:
    """Colour and texture statistics per grid cell (see the module docstring).

    Args:
        rgb: ``(B, 3, H, W)`` RGB in [0, 255].
        stride: cell size; the grid is ``(ceil(H / stride), ceil(W / stride))``
            (the image is edge-padded to whole cells).
        bins: gradient-orientation bins over [0, pi).
        context: side of the neighbourhood (in cells, odd) whose mean is appended;
            1 appends nothing.

    Returns:
        Tensor: ``(B, D, ceil(H / stride), ceil(W / stride))`` float32 with
        ``D = (6 + bins) * (2 if context > 1 else 1)``.
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f'expected (B, 3, H, W) RGB, got {tuple(rgb.shape)}')
    if context < 1 or context % 2 == 0:
        raise ValueError(f'context must be a positive odd number, got {context}')
    rgb = rgb.float()
    lab = rgb_to_lab(rgb / 255.0)
    lab = torch.stack([lab[:, 0] / 100.0, (lab[:, 1] + 128) / 255.0,
                       (lab[:, 2] + 128) / 255.0], dim=1)
    padded = _pad_to_grid(lab, stride)
    mean = F.avg_pool2d(padded, stride)
    std = (F.avg_pool2d(padded ** 2, stride) - mean ** 2).clamp_min(0).sqrt()

    sobel = rgb.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    lightness = F.pad(lab[:, :1], (1, 1, 1, 1), mode='reflect')
    # float32 rounding leaves +-1e-8 where a gradient is exactly zero (flat areas,
    # the mirrored border rows): snapped to 0, so the pixel votes in the bin of the
    # true orientation instead of flipping between the first and the last bin
    grad_x = _snap(F.conv2d(lightness, sobel[None, None]))
    grad_y = _snap(F.conv2d(lightness, sobel.t()[None, None]))
    magnitude = torch.sqrt(grad_x ** 2 + grad_y ** 2)
    angle = torch.remainder(torch.atan2(grad_y, grad_x), math.pi)
    index = (angle / math.pi * bins).long().clamp_max(bins - 1)
    votes = magnitude.new_zeros((rgb.shape[0], bins) + rgb.shape[-2:])
    votes.scatter_(1, index, magnitude)
    histogram = F.avg_pool2d(_pad_to_grid(votes, stride), stride)

    cells = torch.cat([mean * 3, std * 3, histogram], dim=1)
    if context == 1:
        return cells
    surround = F.avg_pool2d(cells, context, stride=1, padding=context // 2,
                            count_include_pad=False)
    return torch.cat([cells, surround], dim=1)
