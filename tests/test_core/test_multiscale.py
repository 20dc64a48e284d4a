"""Multi-scale + flip export against an independent loop."""
import pytest
import torch
import torch.nn.functional as F

from mars_mm.core.multiscale import multiscale_dense, output_grid


def stride8_net(seed: int = 0):
    """A fixed stride-8 conv net: (N, 3, h, w) -> (N, 5, h / 8, w / 8)."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(5, 3, 8, 8, generator=gen)

    def forward(images):
        return torch.tanh(F.conv2d(images, weight, stride=8))
    return forward


def test_export_equals_independent_loop_over_scales_and_flips():
    torch.manual_seed(0)
    image = torch.randn(1, 3, 32, 48)
    net = stride8_net()
    scales = (0.5, 1.0, 1.5, 2.0)  # every scaled size is a multiple of 8
    expected = torch.zeros(5, 4, 6)
    for scale in scales:
        size = (int(32 * scale), int(48 * scale))
        scaled = F.interpolate(image, size=size, mode='bilinear', align_corners=False)
        for flipped in (False, True):
            inputs = scaled.flip(-1) if flipped else scaled
            codes = net(inputs)
            if flipped:
                codes = codes.flip(-1)
            # on whole cells, sampling at output-cell centres is a plain resize
            expected += F.interpolate(codes, size=(4, 6), mode='bilinear',
                                      align_corners=False)[0]
    expected /= 2 * len(scales)
    result = multiscale_dense(net, image, scales, flip=True, stride=8,
                              feature_stride=8)
    assert result.shape == (5, 4, 6)
    torch.testing.assert_close(result, expected, atol=1e-5, rtol=1e-5)


def test_single_scale_without_flip_is_the_code_map():
    image = torch.randn(1, 3, 40, 24)
    net = stride8_net(1)
    result = multiscale_dense(net, image, (1.0,), flip=False)
    torch.testing.assert_close(result, net(image)[0])


def test_flip_of_a_mirror_symmetric_net_on_odd_size():
    # a net that ignores the image sees no difference between flips; the output
    # must still be the constant map, also when H, W are not multiples of 8
    def constant(images):
        n, _, h, w = images.shape
        return torch.ones(n, 2, -(-h // 8), -(-w // 8))
    result = multiscale_dense(constant, torch.randn(1, 3, 37, 21))
    assert result.shape == (2, *output_grid(37, 21))
    torch.testing.assert_close(result, torch.ones_like(result))


@pytest.mark.parametrize('hw,grid', [((37, 21), (5, 3)), ((8, 8), (1, 1)),
                                     ((9, 16), (2, 2))])
def test_output_grid(hw, grid):
    assert output_grid(*hw) == grid
