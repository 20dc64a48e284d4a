"""Training-free Stage 2 embeddings and the small CAM backbone, built by registry."""
import numpy as np
import pytest
import torch

from mars_mm.core.descriptors import colour_texture_descriptors
from mars_mm.registry import MODELS

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def _embedder(**backbone):
    return MODELS.build(dict(
        type='DenseEmbedder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=list(MEAN),
                               std=list(STD), bgr_to_rgb=True),
        backbone=dict(type='FrozenBackbone', out_channels=24, feature_stride=8,
                      backbone=dict(type='ColourTextureEmbedding', **backbone))))


def test_colour_texture_embedding_undoes_the_normalisation():
    rgb = torch.from_numpy(np.random.default_rng(0).integers(
        0, 256, (1, 3, 40, 50)).astype(np.float32))
    normalised = (rgb - torch.tensor(MEAN)[None, :, None, None]) / torch.tensor(
        STD)[None, :, None, None]
    model = _embedder().eval()
    codes = model(normalised)
    assert codes.shape == (1, 24, 5, 7)
    # normalising and undoing it in float32 moves values by ~1e-5 of 255
    assert torch.allclose(codes, colour_texture_descriptors(rgb), atol=1e-3)
    assert torch.equal(model.dense_codes(normalised), model.extract_feat(normalised))
    assert model.feature_stride == 8


def test_dense_embedder_has_nothing_to_train():
    model = _embedder()
    assert not [p for p in model.parameters() if p.requires_grad]
    with pytest.raises(RuntimeError, match='not trained'):
        model(torch.zeros(1, 3, 16, 16), mode='loss')


def test_plain_convnet_stride_channels_and_receptive_field():
    net = MODELS.build(dict(type='PlainConvNet'))
    net.init_weights()
    net.eval()
    image = torch.randn(1, 3, 96, 96, requires_grad=True)
    (out, ) = net(image)
    assert out.shape == (1, 256, 12, 12)
    # the receptive field of one output cell is 45 x 45 pixels (computed by hand:
    # 3x3 convs with strides 1,2,1,2,1,2,1 add 2,2,4,4,8,8,16 to the field)
    out[0, :, 6, 6].sum().backward()
    rows, cols = np.nonzero(image.grad[0].abs().sum(0).numpy())
    assert rows.max() - rows.min() + 1 == 45 and cols.max() - cols.min() + 1 == 45
    with pytest.raises(ValueError, match='differ in length'):
        MODELS.build(dict(type='PlainConvNet', widths=(8, 8), strides=(1, )))
