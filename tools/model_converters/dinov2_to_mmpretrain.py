"""Convert an official DINOv2 ViT checkpoint to mmpretrain's VisionTransformer.

    python tools/model_converters/dinov2_to_mmpretrain.py SRC DST [--num-heads N]

SRC is a released backbone file (e.g. ``dinov2_vitb14_pretrain.pth``) or a DINOv2
training checkpoint (its teacher is used). Layer scale and ViT-g's SwiGLU become
mmpretrain's own options (``mars_mm/core/dinov2_convert.py``); the converted weights
are loaded strictly into a ``VisionTransformer`` of the inferred shape before DST is
written, so a successful run means every tensor found its place. Point a config's
``backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)`` at the result, e.g.
``configs/uss/stego_dinov2-b14_1xb16-5k_voc12aug-224x224.py``.
"""
import argparse

import torch

from mars_mm.core.dinov2_convert import (
    convert_dinov2_to_mmpretrain,
    infer_dinov2_arch,
)
from mars_mm.utils.checkpoint import load_checkpoint_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='DINOv2 ViT -> mmpretrain ViT')
    parser.add_argument('src', help='DINOv2 checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--num-heads', type=int, default=None,
                        help='attention heads (default: 64 channels per head)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from mmpretrain.models import VisionTransformer
    state = convert_dinov2_to_mmpretrain(load_checkpoint_file(args.src))
    settings = infer_dinov2_arch(state)
    if args.num_heads is not None:
        settings['arch']['num_heads'] = args.num_heads
    model = VisionTransformer(**settings, out_type='featmap')
    model.load_state_dict(state, strict=True)
    torch.save(dict(state_dict=state, meta=dict(source=args.src, **settings)),
               args.dst)
    print(f'converted {len(state)} tensors ({settings}) to {args.dst}')


if __name__ == '__main__':
    main()
