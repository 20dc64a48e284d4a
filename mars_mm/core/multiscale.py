"""Multi-scale + flip inference: the resize-and-mirror loop and dense embeddings.

:func:`scaled_views` is the loop every multi-scale inference shares (CAMs in
:mod:`mars_mm.core.cam`, embedding export here): for each scale the images are
resized and their mirrors ride in the same batch.

The exported USS embedding of an ``H x W`` image lives on the stride-8 grid
``(ceil(H / 8), ceil(W / 8))`` whatever the network's own stride. For every scale the
image is resized and the network maps it to a code map whose cell ``j`` covers scaled
pixels ``[j * s, (j + 1) * s)`` (``s`` the feature stride; the last cell may reach
into padding). Each output cell takes the code bilinearly sampled at its centre,
mapped into the scaled (or mirrored, for the flipped input) image; the samples of all
scales and flips are averaged. Sampling at mapped centres, rather than resizing the
code map, keeps flipped and padded inputs exactly aligned with the image.
"""
import math
from typing import Callable, Iterator, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def output_grid(height: int, width: int, stride: int = 8) -> Tuple[int, int]:
    """``(ceil(H / stride), ceil(W / stride))``."""
    return math.ceil(height / stride), math.ceil(width / stride)


#: Scales of multi-scale inference (CAMs, embedding export), the WSSS literature's
#: order; the order only changes float rounding of the sums.
DEFAULT_SCALES = (1.0, 0.5, 1.5, 2.0)


def scaled_size(height: int, width: int, scale: float) -> Tuple[int, int]:
    """Size of the image at ``scale`` (rounded, at least one pixel)."""
    return max(1, int(round(height * scale))), max(1, int(round(width * scale)))


def resize_images(images: Tensor, scale: float) -> Tensor:
    """Bilinearly resize ``(N, 3, H, W)`` images by ``scale`` (identity at 1.0)."""
    if scale == 1.0:
        return images
    size = scaled_size(images.shape[-2], images.shape[-1], scale)
    return F.interpolate(images, size=size, mode='bilinear', align_corners=False)


def scaled_views(images: Tensor, scales: Sequence[float],
                 flip: bool) -> Iterator[Tuple[Tuple[int, int], Tensor]]:
    """The inputs of multi-scale (+ flip) inference, one batch per scale.

    Args:
        images: ``(N, 3, H, W)`` normalised images of one size.
        scales: resize factors, in the order they are yielded.
        flip: append the horizontally mirrored images to each batch.

    Yields:
        tuple: the scaled size ``(h, w)`` and the batch ``(N, 3, h, w)``, or
        ``(2N, 3, h, w)`` with the N mirrored images after the originals.
    """
    for scale in scales:
        resized = resize_images(images, scale)
        batch = torch.cat([resized, resized.flip(-1)]) if flip else resized
        yield tuple(resized.shape[-2:]), batch


def _cell_centres(num_out: int, stride: int, orig: int, scaled: int,
                  feature_stride: int, num_cells: int, mirror: bool,
                  device: torch.device) -> Tensor:
    """``grid_sample`` coordinates (corners not aligned) of the output cell centres.

    Output cell ``o`` is centred at original pixel ``(o + 0.5) * stride``; in the
    scaled image that is ``* scaled / orig`` (mirrored for a flipped input); in code
    cells it is ``/ feature_stride``; normalised over ``num_cells`` cells.
    """
    centres = (torch.arange(num_out, device=device, dtype=torch.float32) + 0.5)
    positions = centres * stride * scaled / orig
    if mirror:
        positions = scaled - positions
    return 2 * positions / (feature_stride * num_cells) - 1


def sample_on_grid(codes: Tensor, grid: Tuple[int, int], stride: int,
                   orig_size: Tuple[int, int], scaled: Tuple[int, int],
                   feature_stride: int, mirror: bool) -> Tensor:
    """Codes of one scaled image sampled at the centres of the output grid.

    Args:
        codes: ``(1, D, h', w')`` codes of the scaled (maybe flipped) image.
        grid: output grid ``(gh, gw)``.
        stride: output stride in original pixels.
        orig_size: ``(H, W)`` original image size.
        scaled: ``(h, w)`` scaled image size.
        feature_stride: scaled pixels per code cell.
        mirror: the codes belong to the horizontally flipped image.

    Returns:
        Tensor: ``(D, gh, gw)``.
    """
    ys = _cell_centres(grid[0], stride, orig_size[0], scaled[0], feature_stride,
                       codes.shape[-2], False, codes.device)
    xs = _cell_centres(grid[1], stride, orig_size[1], scaled[1], feature_stride,
                       codes.shape[-1], mirror, codes.device)
    mesh_y, mesh_x = torch.meshgrid(ys, xs, indexing='ij')
    points = torch.stack([mesh_x, mesh_y], dim=-1)[None]
    return F.grid_sample(codes.float(), points, mode='bilinear',
                         padding_mode='border', align_corners=False)[0]


def multiscale_dense(forward: Callable[[Tensor], Tensor], image: Tensor,
                     scales: Sequence[float] = DEFAULT_SCALES,
                     flip: bool = True, stride: int = 8,
                     feature_stride: int = 8) -> Tensor:
    """Average of ``forward`` over scales (and horizontal flips) on the stride grid.

    Args:
        forward: maps a ``(N, 3, h, w)`` normalised image batch to ``(N, D, h', w')``
            dense codes, cell ``j`` covering pixels ``[j, j + 1) * feature_stride``.
        image: ``(1, 3, H, W)`` normalised image.
        scales: resize factors.
        flip: also run the horizontally flipped image.
        stride: output stride.
        feature_stride: the network's stride in input pixels.

    Returns:
        Tensor: ``(D, ceil(H / stride), ceil(W / stride))`` float32.
    """
    height, width = image.shape[-2:]
    grid = output_grid(height, width, stride)
    total = None
    count = 0
    for size, batch in scaled_views(image, scales, flip):
        codes = forward(batch)
        for index in range(codes.shape[0]):
            sampled = sample_on_grid(codes[index:index + 1], grid, stride,
                                     (height, width), size, feature_stride,
                                     mirror=index == 1)
            total = sampled if total is None else total + sampled
            count += 1
    return total / count
