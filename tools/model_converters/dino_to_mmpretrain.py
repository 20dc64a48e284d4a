"""Convert an official DINO ViT checkpoint to mmpretrain's VisionTransformer.

    python tools/model_converters/dino_to_mmpretrain.py SRC DST [--num-heads N]

SRC is a released backbone file (e.g. ``dino_vitbase8_pretrain.pth``) or a full DINO
training checkpoint (its teacher is used). The converted weights are loaded strictly
into an mmpretrain ``VisionTransformer`` of the matching shape before DST is written,
so a successful run means every tensor found its place. Point a config's
``backbone.init_cfg=dict(type='Pretrained', checkpoint=DST)`` at the result.
"""
import argparse

import torch

from mars_mm.core.dino_convert import (
    convert_dino_to_mmpretrain,
    infer_vit_arch,
    unwrap_dino_checkpoint,
)
from mars_mm.utils.checkpoint import load_checkpoint_file


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='DINO ViT -> mmpretrain ViT')
    parser.add_argument('src', help='DINO checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument('--num-heads', type=int, default=None,
                        help='attention heads (default: 64 channels per head)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    from mmpretrain.models import VisionTransformer
    checkpoint = load_checkpoint_file(args.src)
    state = convert_dino_to_mmpretrain(unwrap_dino_checkpoint(checkpoint))
    settings = infer_vit_arch(state)
    if args.num_heads is not None:
        settings['arch']['num_heads'] = args.num_heads
    model = VisionTransformer(**settings, out_type='featmap')
    model.load_state_dict(state, strict=True)
    torch.save(dict(state_dict=state, meta=dict(source=args.src, **settings)),
               args.dst)
    print(f'converted {len(state)} tensors ({settings}) to {args.dst}')


if __name__ == '__main__':
    main()
