"""Multi-scale CAM aggregation against a brute-force loop over scales and flips."""
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mars_mm.core.cam import (
    background_score,
    batch_image_cams,
    cams_to_label,
    image_cams,
    threshold_label,
)

SCALES = (1.0, 0.5, 1.5, 2.0)


def tiny_cam_net(num_classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, num_classes, 1, bias=False))
    return net.eval()


def brute_force_cams(net, image, tags, scales=SCALES):
    """One forward per (scale, flip), everything upsampled, summed, then selected."""
    height, width = image.shape[-2:]
    total = torch.zeros((net[-1].out_channels, height, width))
    for scale in scales:
        size = (int(round(height * scale)), int(round(width * scale)))
        for mirrored in (False, True):
            x = image[None]
            if scale != 1.0:
                x = F.interpolate(x, size=size, mode='bilinear', align_corners=False)
            if mirrored:
                x = torch.flip(x, dims=[3])
            cam = torch.clamp(net(x), min=0)
            cam = F.interpolate(cam, size=(height, width), mode='bilinear',
                                align_corners=False)[0]
            if mirrored:
                cam = torch.flip(cam, dims=[2])
            total += cam
    result = []
    for tag in sorted(tags):
        cam = total[tag - 1]
        result.append(cam / (cam.max() + 1e-5))
    return torch.stack(result)


@pytest.mark.parametrize('size', [(32, 32), (37, 29)])
def test_image_cams_equals_brute_force(size):
    net = tiny_cam_net()
    image = torch.randn(3, *size)
    tags = [4, 2]
    with torch.no_grad():
        expected = brute_force_cams(net, image, tags)
        got = image_cams(net, image, tags)
        chunked = image_cams(net, image, tags, max_batch=1)
    assert got.shape == (2, *size)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(chunked, expected, atol=1e-5)
    assert float(got.max()) <= 1.0


def test_batch_image_cams_per_image_tags():
    net = tiny_cam_net()
    images = torch.randn(3, 3, 24, 40)
    tags = [[1], [5, 3], []]
    with torch.no_grad():
        results = batch_image_cams(net, images, tags, max_batch=4)
        for image, image_tags, got in zip(images, tags, results):
            if not image_tags:
                assert got.shape == (0, 24, 40)
                continue
            expected = brute_force_cams(net, image, image_tags)
            assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_cams_on_cuda_equal_the_cpu_brute_force():
    # found on a GPU: batch_image_cams indexed CUDA maps with a CPU tensor
    net = tiny_cam_net()
    images = torch.randn(2, 3, 24, 40)
    tags = [[1, 4], [2]]
    with torch.no_grad():
        on_gpu = batch_image_cams(net.cuda(), images.cuda(), tags)
        single = image_cams(net, images[0].cuda(), tags[0])
        for image, image_tags, got in zip(images, tags, on_gpu):
            expected = brute_force_cams(net.cpu(), image, image_tags)
            assert torch.allclose(got.cpu(), expected, atol=1e-4)
        assert torch.allclose(single.cpu(), on_gpu[0].cpu(), atol=1e-5)


def test_image_cams_rejects_background_tag():
    with pytest.raises(ValueError, match='foreground'):
        image_cams(tiny_cam_net(), torch.randn(3, 8, 8), [0, 1])


def test_background_rules():
    cams = np.array([[[0.0, 0.5], [1.0, 0.2]],
                     [[0.1, 0.9], [0.0, 0.2]]], dtype=np.float32)
    power = background_score(cams, bg_power=2)
    # max over classes: [[0.1, 0.9], [1.0, 0.2]] -> (1 - max) ** 2
    assert np.allclose(power, [[0.81, 0.01], [0.0, 0.64]])
    assert np.allclose(background_score(cams, bg_threshold=0.3), 0.3)
    with pytest.raises(ValueError):
        background_score(cams, bg_power=2, bg_threshold=0.3)


def test_threshold_and_power_labels_without_crf():
    cams = np.array([[[0.0, 0.5], [1.0, 0.2]],
                     [[0.1, 0.9], [0.0, 0.25]]], dtype=np.float32)
    keys = [3, 7]
    # threshold 0.3: background wins where both maps are below 0.3
    assert threshold_label(cams, keys, 0.3).tolist() == [[0, 7], [3, 0]]
    # power 2: bg = [[0.81, 0.01], [0.0, 0.5625]]
    label = cams_to_label(cams, keys, bg_power=2, crf_params=None)
    assert label.tolist() == [[0, 7], [3, 0]]
    assert label.dtype == np.uint8
    empty = cams_to_label(np.zeros((0, 2, 2)), [], crf_params=None)
    assert empty.tolist() == [[0, 0], [0, 0]]


def test_cams_to_label_with_crf_uses_present_classes_only():
    pytest.importorskip('pydensecrf')
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (20, 30, 3)).astype(np.uint8)
    cams = np.zeros((2, 20, 30), dtype=np.float32)
    cams[0, :, :10] = 1.0
    cams[1, :, 20:] = 1.0
    label = cams_to_label(cams, [5, 9], image=image, bg_power=2)
    assert set(np.unique(label)) <= {0, 5, 9}
    assert (label[:, :8] == 5).mean() > 0.9
    assert (label[:, 22:] == 9).mean() > 0.9
    assert (label[:, 12:18] == 0).mean() > 0.9
    with pytest.raises(ValueError, match='RGB image'):
        cams_to_label(cams, [5, 9], image=None)
