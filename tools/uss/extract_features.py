"""Export Stage 2 embeddings of every image of a split, one float16 .npy per image.

    python tools/uss/extract_features.py CONFIG [CKPT] --out DIR [--split train]
        [--scales 0.5 1.0 1.5 2.0] [--no-flip] [--stride 8] [--device cpu]
        [--what codes|features] [--compact-bits 4|8 [--compact-pool N]]
        [--no-resume] [--cfg-options k=v ...] [--launcher pytorch|slurm]

Each file ``DIR/<stem>.npy`` holds the raw (not normalised) codes averaged over the
scales and horizontal flips, ``(D, ceil(H / 8), ceil(W / 8))``. With
``--compact-bits`` each image is written as ``DIR/<stem>.q8.npz`` instead (4- or
8-bit codes, ``mars_mm/debias/quantised.py``; the file
``tools/uss/compact_embeddings.py`` makes of the ``.npy``), for Stage 3 with
``debias.embedding_suffix=.q8.npz`` (sizes and label changes:
``docs/en/benchmarks.md``, "Disk use"). A trained STEGO
config needs its checkpoint; an embedding with nothing to train (e.g.
``configs/uss/colourtexture-d8_planted.py``) exports without one
(``docs/en/data_formats.md``). Sharded over ranks, atomic, rerunning skips finished
images.
"""
import argparse

from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    load_config,
    parse_job_args,
    positive_float,
    positive_int,
)
from mars_mm.apis.uss import extract_embeddings
from mars_mm.core.multiscale import DEFAULT_SCALES


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Export USS embeddings (Stage 2)')
    parser.add_argument('config', help='USS (STEGO) config')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='trained STEGO checkpoint (not needed for a model with '
                        'nothing to train, e.g. DenseEmbedder, or --what features)')
    parser.add_argument('--out', required=True,
                        help='output folder of <stem>.npy (or <stem>.q8.npz)')
    parser.add_argument('--split', default='train', choices=('train', 'val', 'test'))
    parser.add_argument('--scales', type=positive_float, nargs='+',
                        help='export scales (default: the config\'s export.scales, '
                        f'else {list(DEFAULT_SCALES)})')
    parser.add_argument('--no-flip', action='store_true',
                        help='skip the mirrored image (default: the config\'s '
                        'export.flip, else flip)')
    parser.add_argument('--stride', type=int, default=8, help='output stride')
    parser.add_argument('--what', choices=('codes', 'features'), default='codes',
                        help='STEGO codes (default) or the frozen backbone features')
    parser.add_argument('--compact-bits', type=int, choices=(4, 8), default=None,
                        help='write <stem>.q8.npz with 4- or 8-bit codes instead '
                        'of the lossless <stem>.npy')
    parser.add_argument('--compact-pool', type=positive_int, default=1,
                        help='with --compact-bits: average N x N cells first '
                        '(default 1: keep the grid)')
    add_job_args(parser, device=True, resume=True)
    args = parse_job_args(parser)
    if args.compact_pool != 1 and args.compact_bits is None:
        parser.error('--compact-pool needs --compact-bits')
    return args


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      data_root=args.data_root)
    init_offline_distributed(args.launcher)
    stats = extract_embeddings(cfg, args.checkpoint, args.out, split=args.split,
                               scales=args.scales,
                               flip=False if args.no_flip else None,
                               stride=args.stride, device=args.device,
                               resume=not args.no_resume, what=args.what,
                               compact_bits=args.compact_bits,
                               compact_pool=args.compact_pool)
    print(f'wrote {stats["images"]} embeddings to {args.out} in '
          f'{stats["seconds"]:.1f} s ({stats["per_second"]:.2f} images/s)')


if __name__ == '__main__':
    main()
    finalize_distributed()
