"""The frozen (oneDNN) CAM function gives the eager model's multi-scale CAMs."""
import torch
from mmengine.registry import init_default_scope

from mars_mm.apis.cam_fast import frozen_cam_function
from mars_mm.core.cam import image_cams
from mars_mm.registry import MODELS


def tiny_cam_model():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='CAMClassifier',
        backbone=dict(type='ResNetV1c', depth=18, stem_channels=8, base_channels=8,
                      strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2),
                      out_indices=(3, )),
        head=dict(type='CAMHead', in_channels=64, num_classes=5)))
    model.init_weights()
    for module in model.modules():  # BN statistics that folding must keep
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model.eval()


def test_frozen_cams_equal_eager_at_every_scale_and_image_size():
    model = tiny_cam_model()
    frozen = frozen_cam_function(model)
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        # the graph is traced on the first batch; later sizes reuse it
        for height, width in ((40, 56), (33, 47), (64, 64)):
            image = torch.randn(3, height, width, generator=generator)
            expected = image_cams(model.cam, image, [1, 4])
            got = image_cams(frozen, image, [1, 4])
            assert got.shape == expected.shape
            assert float((got - expected).abs().max()) < 1e-5
    # the model passed in is not changed (BN folded in a copy)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
