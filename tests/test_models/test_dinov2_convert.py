"""DINOv2 -> mmpretrain ViT: a random state dict in the official key layout (built
here from DINOv2's published architecture) against a plain-PyTorch forward, the
converter tool, and the DINOv2 STEGO config built and exported on CPU."""
import math
import os
import os.path as osp
import runpy
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import mars_mm  # noqa: F401  (registers modules)
from mars_mm.core.dinov2_convert import (
    convert_dinov2_to_mmpretrain,
    infer_dinov2_arch,
)
from mars_mm.registry import MODELS
from mars_mm.utils.checkpoint import load_checkpoint_file
from tests.fixtures import make_tiny_voc

DIMS, LAYERS, HEADS, PATCH, SIDE = 32, 2, 2, 14, 3  # 3 x 3 patches of 14 px
CONFIG = 'configs/uss/stego_dinov2-b14_1xb16-5k_voc12aug-224x224.py'


def dinov2_state_dict(seed: int = 0, swiglu: bool = False, chunked: bool = False):
    """Random tensors under DINOv2's key names (``dinov2_vit*14_pretrain.pth``):
    ``cls_token``, ``pos_embed``, ``mask_token``, ``patch_embed.proj``, per block
    ``norm1``, ``attn.qkv``, ``attn.proj``, ``ls1.gamma``, ``norm2``, ``mlp.fc1`` /
    ``mlp.fc2`` (ViT-g: ``mlp.w12`` / ``mlp.w3``), ``ls2.gamma``, then ``norm``."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen) * 0.2

    state = {'cls_token': rand(1, 1, DIMS), 'pos_embed': rand(1, SIDE * SIDE + 1, DIMS),
             'mask_token': rand(1, DIMS),
             'patch_embed.proj.weight': rand(DIMS, 3, PATCH, PATCH),
             'patch_embed.proj.bias': rand(DIMS)}
    for i in range(LAYERS):
        block = f'blocks.0.{i}.' if chunked else f'blocks.{i}.'
        state.update({
            block + 'norm1.weight': 1 + rand(DIMS), block + 'norm1.bias': rand(DIMS),
            block + 'attn.qkv.weight': rand(3 * DIMS, DIMS),
            block + 'attn.qkv.bias': rand(3 * DIMS),
            block + 'attn.proj.weight': rand(DIMS, DIMS),
            block + 'attn.proj.bias': rand(DIMS),
            block + 'ls1.gamma': 0.5 + rand(DIMS),
            block + 'norm2.weight': 1 + rand(DIMS), block + 'norm2.bias': rand(DIMS),
            block + 'ls2.gamma': 0.5 + rand(DIMS)})
        if swiglu:  # DINOv2's fused SwiGLU: hidden (int(4 C * 2 / 3) + 7) // 8 * 8
            hidden = (int(4 * DIMS * 2 / 3) + 7) // 8 * 8
            state.update({block + 'mlp.w12.weight': rand(2 * hidden, DIMS),
                          block + 'mlp.w12.bias': rand(2 * hidden),
                          block + 'mlp.w3.weight': rand(DIMS, hidden),
                          block + 'mlp.w3.bias': rand(DIMS)})
        else:
            state.update({block + 'mlp.fc1.weight': rand(4 * DIMS, DIMS),
                          block + 'mlp.fc1.bias': rand(4 * DIMS),
                          block + 'mlp.fc2.weight': rand(DIMS, 4 * DIMS),
                          block + 'mlp.fc2.bias': rand(DIMS)})
    state['norm.weight'] = 1 + rand(DIMS)
    state['norm.bias'] = rand(DIMS)
    return state


def dinov2_pos_embed(pos_embed, height, width):
    """DINOv2's ``interpolate_pos_encoding``: kept for the stored square grid, else
    bicubic with a scale factor of (patches + 0.1) / S per axis."""
    side = math.isqrt(pos_embed.shape[1] - 1)
    rows, cols = height // PATCH, width // PATCH
    if rows * cols == side * side and height == width:
        return pos_embed
    grid = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
                         mode='bicubic', align_corners=False)
    return torch.cat([pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)


def plain_dinov2_patch_features(state, images, chunked=False):
    """DINOv2's ViT forward written out, layer scale on both residual branches:
    ``(B, 3, H, W)`` (multiples of the patch) -> ``(B, C, H / 14, W / 14)``."""
    batch = images.shape[0]
    tokens = F.conv2d(images, state['patch_embed.proj.weight'],
                      state['patch_embed.proj.bias'], stride=PATCH)
    height, width = tokens.shape[-2:]
    tokens = tokens.flatten(2).transpose(1, 2)
    tokens = torch.cat([state['cls_token'].expand(batch, -1, -1), tokens], dim=1)
    tokens = tokens + dinov2_pos_embed(state['pos_embed'], *images.shape[-2:])
    head_dims = DIMS // HEADS
    for i in range(LAYERS):
        p = f'blocks.0.{i}.' if chunked else f'blocks.{i}.'
        x = F.layer_norm(tokens, (DIMS,), state[p + 'norm1.weight'],
                         state[p + 'norm1.bias'], eps=1e-6)
        qkv = F.linear(x, state[p + 'attn.qkv.weight'], state[p + 'attn.qkv.bias'])
        qkv = qkv.reshape(batch, -1, 3, HEADS, head_dims).permute(2, 0, 3, 1, 4)
        attn = (qkv[0] @ qkv[1].transpose(-2, -1) / head_dims ** 0.5).softmax(-1)
        out = (attn @ qkv[2]).transpose(1, 2).reshape(batch, -1, DIMS)
        out = F.linear(out, state[p + 'attn.proj.weight'], state[p + 'attn.proj.bias'])
        tokens = tokens + state[p + 'ls1.gamma'] * out
        x = F.layer_norm(tokens, (DIMS,), state[p + 'norm2.weight'],
                         state[p + 'norm2.bias'], eps=1e-6)
        if p + 'mlp.w12.weight' in state:
            x1, x2 = F.linear(x, state[p + 'mlp.w12.weight'],
                              state[p + 'mlp.w12.bias']).chunk(2, dim=-1)
            x = F.linear(F.silu(x1) * x2, state[p + 'mlp.w3.weight'],
                         state[p + 'mlp.w3.bias'])
        else:
            x = F.linear(F.gelu(F.linear(x, state[p + 'mlp.fc1.weight'],
                                         state[p + 'mlp.fc1.bias'])),
                         state[p + 'mlp.fc2.weight'], state[p + 'mlp.fc2.bias'])
        tokens = tokens + state[p + 'ls2.gamma'] * x
    tokens = F.layer_norm(tokens, (DIMS,), state['norm.weight'], state['norm.bias'],
                          eps=1e-6)
    return tokens[:, 1:].transpose(1, 2).reshape(batch, DIMS, height, width)


def converted_vit(state, vit_type='DINOVisionTransformer'):
    converted = convert_dinov2_to_mmpretrain(state)
    settings = infer_dinov2_arch(converted, head_dims=DIMS // HEADS)
    model = MODELS.build(dict(type=vit_type, **settings, out_type='featmap'))
    model.load_state_dict(converted, strict=True)
    model.eval()
    return model, settings


@pytest.mark.parametrize('swiglu,chunked', [(False, False), (True, False),
                                            (False, True)])
@pytest.mark.parametrize('size', [(SIDE * PATCH, SIDE * PATCH), (56, 70)])
def test_converted_dinov2_matches_plain_forward(swiglu, chunked, size):
    """At the stored grid and on a non-square 4 x 5 patch input, with MLP or ViT-g's
    SwiGLU, from released (``blocks.N``) or chunked training (``blocks.C.N``) keys."""
    state = dinov2_state_dict(swiglu=swiglu, chunked=chunked)
    model, settings = converted_vit(state)
    assert settings['patch_size'] == PATCH and settings['img_size'] == SIDE * PATCH
    assert settings['layer_scale_init_value'] > 0
    assert ('layer_cfgs' in settings) == swiglu
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        ours = model(images)[-1]
    expected = plain_dinov2_patch_features(state, images, chunked)
    assert ours.shape == (2, DIMS, size[0] // PATCH, size[1] // PATCH)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


def test_layer_scale_is_not_lost():
    """A ViT built without layer scale cannot take the weights: the gammas matter."""
    converted = convert_dinov2_to_mmpretrain(dinov2_state_dict())
    settings = infer_dinov2_arch(converted, head_dims=DIMS // HEADS)
    settings['layer_scale_init_value'] = 0.
    model = MODELS.build(dict(type='DINOVisionTransformer', **settings,
                              out_type='featmap'))
    with pytest.raises(RuntimeError, match='gamma1'):
        model.load_state_dict(converted, strict=True)


def test_conversion_errors_and_training_checkpoints():
    state = dinov2_state_dict()
    with pytest.raises(ValueError, match='registers'):
        convert_dinov2_to_mmpretrain(dict(state, register_tokens=torch.zeros(1, 4,
                                                                             DIMS)))
    with pytest.raises(KeyError, match='blocks.0.attn.extra'):
        convert_dinov2_to_mmpretrain(dict(state, **{'blocks.0.attn.extra':
                                                    torch.zeros(1)}))
    # a training checkpoint: teacher, backbone. prefix, DINO / iBOT heads dropped
    teacher = {f'backbone.{k}': v for k, v in state.items()}
    teacher['dino_head.mlp.0.weight'] = torch.zeros(2, 2)
    teacher['ibot_head.mlp.0.weight'] = torch.zeros(2, 2)
    converted = convert_dinov2_to_mmpretrain(dict(teacher=teacher, student={}))
    assert converted.keys() == convert_dinov2_to_mmpretrain(state).keys()
    assert 'mask_token' not in converted


def test_converter_tool(tmp_path, monkeypatch, repo_root, capsys):
    state = dinov2_state_dict()
    src, dst = str(tmp_path / 'dinov2_vitt14_pretrain.pth'), str(tmp_path / 'out.pth')
    torch.save(state, src)
    monkeypatch.setattr(sys, 'argv', ['dinov2_to_mmpretrain.py', src, dst,
                                      '--num-heads', str(HEADS)])
    runpy.run_path(osp.join(repo_root, 'tools', 'model_converters',
                            'dinov2_to_mmpretrain.py'), run_name='__main__')
    assert f'converted {len(state) - 1} tensors' in capsys.readouterr().out
    saved = load_checkpoint_file(dst)  # the weights-only loader reads it
    model, _ = converted_vit(state)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(saved['state_dict'][key], value)
    assert saved['meta']['arch']['num_heads'] == HEADS


def _extract(repo_root, monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', ['extract_features.py', *map(str, args)])
    runpy.run_path(osp.join(repo_root, 'tools', 'uss', 'extract_features.py'),
                   run_name='__main__')


def test_dinov2_stego_config_builds_and_exports_on_cpu(tmp_path, monkeypatch,
                                                       repo_root):
    """The shipped ViT-B/14 config, random weights, 36 px images (not a multiple of
    14): codes on Stage 3's stride-8 grid, and frozen features on the patch grid."""
    monkeypatch.chdir(repo_root)
    root = str(tmp_path / 'voc')
    stems = make_tiny_voc(root, num_train=2, num_val=1, size=36)
    random_init = {'model.backbone.backbone.init_cfg': None}
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(random_init)
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.feature_stride == 14
    assert model.backbone.backbone.patch_embed.projection.kernel_size == (14, 14)
    assert model.backbone.backbone.pos_embed.shape == (1, 1 + 37 * 37, 768)
    checkpoint = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict(), meta={}), checkpoint)
    dataset = 'train_dataloader.dataset.dataset.'
    options = ['--cfg-options', 'model.backbone.backbone.init_cfg=None',
               dataset + 'ann_file=ImageSets/Segmentation/train.txt',
               dataset + 'data_prefix.seg_map_path=SegmentationClass']
    common = ['--data-root', root, '--device', 'cpu', *options]
    codes, feats = str(tmp_path / 'codes'), str(tmp_path / 'feats')
    _extract(repo_root, monkeypatch, CONFIG, checkpoint, '--out', codes,
             '--scales', 1.0, 0.5, *common)
    _extract(repo_root, monkeypatch, CONFIG, checkpoint, '--out', feats,
             '--what', 'features', '--scales', 1.0, '--no-flip', '--stride', 14,
             *common)
    assert sorted(os.listdir(codes)) == sorted(
        [stem + '.npy' for stem in stems[:2]] + ['job_settings.json'])
    exported = np.load(osp.join(codes, stems[0] + '.npy'))
    assert exported.dtype == np.float16 and exported.shape == (70, 5, 5)
    assert np.isfinite(exported).all() and exported.std() > 0
    # one scale, no flip, at the patch stride: the backbone's own 3 x 3 map
    from PIL import Image
    image = np.asarray(Image.open(osp.join(root, 'JPEGImages', stems[0] + '.jpg'))
                       .convert('RGB'), dtype=np.float32)
    image = (image - np.array([123.675, 116.28, 103.53], np.float32)) / \
        np.array([58.395, 57.12, 57.375], np.float32)
    with torch.no_grad():
        expected = model.backbone(torch.from_numpy(image).permute(2, 0, 1)[None])[0]
    assert expected.shape == (768, 3, 3)
    np.testing.assert_allclose(np.load(osp.join(feats, stems[0] + '.npy')),
                               expected.numpy(), atol=2e-2, rtol=2e-3)
