"""DINO -> mmpretrain ViT conversion against a plain-PyTorch ViT forward."""
import math
import os.path as osp
import runpy
import sys

import pytest
import torch
import torch.nn.functional as F

import mars_mm  # noqa: F401  (registers modules)
from mars_mm.core.dino_convert import (
    convert_dino_to_mmpretrain,
    dino_resize_pos_embed,
    infer_vit_arch,
    unwrap_dino_checkpoint,
)
from mars_mm.registry import MODELS

DIMS, LAYERS, HEADS, PATCH, SIDE = 32, 2, 2, 8, 4  # 4 x 4 patches of 8 px


def dino_state_dict(seed: int = 0) -> dict:
    """Random tensors under the official DINO key names."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen) * 0.2

    state = {'cls_token': rand(1, 1, DIMS), 'pos_embed': rand(1, SIDE * SIDE + 1, DIMS),
             'patch_embed.proj.weight': rand(DIMS, 3, PATCH, PATCH),
             'patch_embed.proj.bias': rand(DIMS)}
    for i in range(LAYERS):
        block = f'blocks.{i}.'
        state.update({
            block + 'norm1.weight': 1 + rand(DIMS), block + 'norm1.bias': rand(DIMS),
            block + 'attn.qkv.weight': rand(3 * DIMS, DIMS),
            block + 'attn.qkv.bias': rand(3 * DIMS),
            block + 'attn.proj.weight': rand(DIMS, DIMS),
            block + 'attn.proj.bias': rand(DIMS),
            block + 'norm2.weight': 1 + rand(DIMS), block + 'norm2.bias': rand(DIMS),
            block + 'mlp.fc1.weight': rand(4 * DIMS, DIMS),
            block + 'mlp.fc1.bias': rand(4 * DIMS),
            block + 'mlp.fc2.weight': rand(DIMS, 4 * DIMS),
            block + 'mlp.fc2.bias': rand(DIMS)})
    state['norm.weight'] = 1 + rand(DIMS)
    state['norm.bias'] = rand(DIMS)
    return state


def dino_pos_embed(pos_embed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """DINO's position embeddings for an image of height x width pixels, written out
    independently: (1, 1 + S * S, C) -> (1, 1 + (H / p) * (W / p), C).

    DINO keeps the stored embeddings when the token count matches and the image is
    square; otherwise it resamples the S x S grid with a scale factor of
    (patches + 0.1) / S per axis, rows first.
    """
    side = math.isqrt(pos_embed.shape[1] - 1)
    rows, cols = height // PATCH, width // PATCH
    if rows * cols == side * side and height == width:
        return pos_embed
    grid = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side),
                         mode='bicubic', align_corners=False)
    assert grid.shape[-2:] == (rows, cols)
    return torch.cat([pos_embed[:, :1], grid.flatten(2).transpose(1, 2)], dim=1)


def plain_vit_patch_features(state: dict, images: torch.Tensor) -> torch.Tensor:
    """DINO's ViT forward written out: (B, 3, H, W) -> (B, C, H / p, W / p)."""
    batch = images.shape[0]
    tokens = F.conv2d(images, state['patch_embed.proj.weight'],
                      state['patch_embed.proj.bias'], stride=PATCH)
    height, width = tokens.shape[-2:]
    tokens = tokens.flatten(2).transpose(1, 2)
    tokens = torch.cat([state['cls_token'].expand(batch, -1, -1), tokens], dim=1)
    tokens = tokens + dino_pos_embed(state['pos_embed'], *images.shape[-2:])
    head_dims = DIMS // HEADS
    for i in range(LAYERS):
        p = f'blocks.{i}.'
        x = F.layer_norm(tokens, (DIMS,), state[p + 'norm1.weight'],
                         state[p + 'norm1.bias'], eps=1e-6)
        qkv = F.linear(x, state[p + 'attn.qkv.weight'], state[p + 'attn.qkv.bias'])
        qkv = qkv.reshape(batch, -1, 3, HEADS, head_dims).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1) / head_dims ** 0.5).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(batch, -1, DIMS)
        tokens = tokens + F.linear(out, state[p + 'attn.proj.weight'],
                                   state[p + 'attn.proj.bias'])
        x = F.layer_norm(tokens, (DIMS,), state[p + 'norm2.weight'],
                         state[p + 'norm2.bias'], eps=1e-6)
        x = F.linear(F.gelu(F.linear(x, state[p + 'mlp.fc1.weight'],
                                     state[p + 'mlp.fc1.bias'])),
                     state[p + 'mlp.fc2.weight'], state[p + 'mlp.fc2.bias'])
        tokens = tokens + x
    tokens = F.layer_norm(tokens, (DIMS,), state['norm.weight'], state['norm.bias'],
                          eps=1e-6)
    return tokens[:, 1:].transpose(1, 2).reshape(batch, DIMS, height, width)


def converted_vit(vit_type: str, state: dict):
    """A registry-built ViT of ``vit_type`` holding ``state`` (DINO keys), eval mode."""
    converted = convert_dino_to_mmpretrain(state)
    settings = infer_vit_arch(converted, head_dims=DIMS // HEADS)
    assert settings['patch_size'] == PATCH and settings['img_size'] == SIDE * PATCH
    model = MODELS.build(dict(type=vit_type, **settings, out_type='featmap'))
    model.load_state_dict(converted, strict=True)
    model.eval()  # mmpretrain's train() returns None, so no chaining
    return model


@pytest.mark.parametrize('vit_type',
                         ['mmpretrain.VisionTransformer', 'DINOVisionTransformer'])
def test_converted_vit_matches_plain_forward(vit_type):
    """At the training resolution both ViTs are DINO's (no resizing at all)."""
    state = dino_state_dict()
    model = converted_vit(vit_type, state)
    images = torch.randn(2, 3, SIDE * PATCH, SIDE * PATCH)
    with torch.no_grad():
        ours = model(images)[-1]
    torch.testing.assert_close(ours, plain_vit_patch_features(state, images),
                               atol=1e-5, rtol=1e-4)


def test_dino_vit_matches_plain_forward_on_non_square_input():
    state = dino_state_dict()
    images = torch.randn(2, 3, 160, 224)  # 20 x 28 patches from a 4 x 4 grid
    expected = plain_vit_patch_features(state, images)
    with torch.no_grad():
        ours = converted_vit('DINOVisionTransformer', state)(images)[-1]
        theirs = converted_vit('mmpretrain.VisionTransformer', state)(images)[-1]
    assert ours.shape == (2, DIMS, 20, 28)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    # mmpretrain's own resizing is what this model fixes: the test can tell
    assert (theirs - expected).abs().max() > 1e-3


def test_dino_vit_equals_mmpretrain_vit_on_square_training_input():
    state = dino_state_dict()
    images = torch.randn(2, 3, SIDE * PATCH, SIDE * PATCH)
    with torch.no_grad():
        ours = converted_vit('DINOVisionTransformer', state)(images)[-1]
        theirs = converted_vit('mmpretrain.VisionTransformer', state)(images)[-1]
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_dino_resize_pos_embed_matches_dino_formula():
    """DINO's 28 x 28 grid (224 px, patch 8) for a 160 x 224 image: 20 x 28 patches."""
    side, dims, rows, cols = 28, 6, 160 // PATCH, 224 // PATCH
    pos_embed = torch.randn(1, 1 + side * side, dims,
                            generator=torch.Generator().manual_seed(0))
    grid = pos_embed[:, 1:].reshape(1, side, side, dims).permute(0, 3, 1, 2)
    resized = F.interpolate(grid, scale_factor=((rows + 0.1) / math.sqrt(side * side),
                                                (cols + 0.1) / math.sqrt(side * side)),
                            mode='bicubic')
    expected = torch.cat([pos_embed[:, :1],
                          resized.reshape(1, dims, rows * cols).transpose(1, 2)], dim=1)
    ours = dino_resize_pos_embed(pos_embed, (rows, cols))
    assert ours.shape == (1, 1 + rows * cols, dims)
    torch.testing.assert_close(ours, expected, atol=0, rtol=0)
    # resizing to the output size (mmpretrain) samples elsewhere
    from mmpretrain.models.utils import resize_pos_embed
    theirs = resize_pos_embed(pos_embed, (side, side), (rows, cols), mode='bicubic')
    assert (theirs - expected).abs().max() > 1e-2


def test_dino_resize_pos_embed_keeps_training_grid():
    pos_embed = torch.randn(1, 1 + SIDE * SIDE, DIMS)
    assert dino_resize_pos_embed(pos_embed, (SIDE, SIDE)) is pos_embed
    # a square grid of another size is resampled (DINO resizes whenever the token
    # count differs)
    assert dino_resize_pos_embed(pos_embed, (SIDE + 1, SIDE + 1)).shape[1] == \
        1 + (SIDE + 1) ** 2
    with pytest.raises(ValueError, match='square'):
        dino_resize_pos_embed(torch.randn(1, 1 + 12, DIMS), (3, 4))


def test_full_training_checkpoint_uses_teacher():
    state = dino_state_dict()
    wrapped = {'teacher': {'module.backbone.' + k: v for k, v in state.items()},
               'student': {}, 'epoch': 3}
    wrapped['teacher']['module.head.mlp.0.weight'] = torch.zeros(2, 2)
    assert list(unwrap_dino_checkpoint(wrapped)) == list(state)


def test_unknown_key_is_named():
    state = dino_state_dict()
    state['blocks.0.attn.rel_pos'] = torch.zeros(1)
    with pytest.raises(KeyError, match='blocks.0.attn.rel_pos'):
        convert_dino_to_mmpretrain(state)


def test_converter_tool_writes_strictly_loadable_file(tmp_path, monkeypatch,
                                                      repo_root):
    from mmpretrain.models import VisionTransformer
    src, dst = str(tmp_path / 'dino.pth'), str(tmp_path / 'vit.pth')
    state = dino_state_dict(1)
    torch.save(state, src)
    monkeypatch.setattr(sys, 'argv', ['dino_to_mmpretrain.py', src, dst,
                                      '--num-heads', str(HEADS)])
    runpy.run_path(osp.join(repo_root, 'tools/model_converters/dino_to_mmpretrain.py'),
                   run_name='__main__')
    saved = torch.load(dst, map_location='cpu', weights_only=True)
    model = VisionTransformer(arch=dict(embed_dims=DIMS, num_layers=LAYERS,
                                        num_heads=HEADS, feedforward_channels=4 * DIMS),
                              img_size=SIDE * PATCH, patch_size=PATCH,
                              out_type='featmap')
    model.load_state_dict(saved['state_dict'], strict=True)
    model.eval()
    images = torch.randn(1, 3, SIDE * PATCH, SIDE * PATCH)
    with torch.no_grad():
        torch.testing.assert_close(model(images)[-1],
                                   plain_vit_patch_features(state, images),
                                   atol=1e-5, rtol=1e-4)
