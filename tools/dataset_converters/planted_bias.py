"""Generate a planted-bias dataset in VOC layout.

Example::

    python tools/dataset_converters/planted_bias.py data/planted_bias
    python tools/dataset_converters/planted_bias.py out --num-train 1000 \\
        --classes boat train bird cat --bias-pairs boat:water train:rails:0.8:0.2

See ``mars_mm.datasets.generators.planted_bias`` and ``docs/en/datasets.md``.
"""
import argparse
import time

from tqdm import tqdm

from mars_mm.datasets.generators.planted_bias import (
    DEFAULT_BIAS_PAIRS,
    DEFAULT_CLASSES,
    format_co_occurrence,
    generate_planted_bias,
)


def parse_pair(text: str) -> dict:
    """``cls:context`` or ``cls:context:p_with:p_without``."""
    parts = text.split(':')
    if len(parts) not in (2, 4):
        raise argparse.ArgumentTypeError(
            f'bias pair {text!r}: expected cls:context or cls:context:p_with:p_without')
    pair = dict(cls=parts[0], context=parts[1])
    if len(parts) == 4:
        pair.update(p_with=float(parts[2]), p_without=float(parts[3]))
    return pair


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', help='output folder (VOC layout)')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--image-size', type=int, nargs=2, default=(128, 128),
                        metavar=('H', 'W'))
    parser.add_argument('--classes', nargs='+', default=list(DEFAULT_CLASSES),
                        help='foreground class names (background is added)')
    parser.add_argument('--bias-pairs', nargs='*', type=parse_pair,
                        default=[dict(p) for p in DEFAULT_BIAS_PAIRS],
                        help='cls:context[:p_with:p_without]; contexts with a '
                        'built-in look: water, rails, grass')
    parser.add_argument('--p-with', type=float, default=0.9,
                        help='P(context | class present) for pairs without their own')
    parser.add_argument('--p-without', type=float, default=0.1,
                        help='P(context | class absent) for pairs without their own')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--max-objects', type=int, default=3)
    parser.add_argument('--noise-std', type=float, default=8.0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    total = args.num_train + args.num_val
    start = time.perf_counter()
    with tqdm(total=total, desc='planted-bias images') as bar:
        meta = generate_planted_bias(
            args.out_dir, num_train=args.num_train, num_val=args.num_val,
            image_size=tuple(args.image_size), classes=args.classes,
            bias_pairs=args.bias_pairs, p_with=args.p_with, p_without=args.p_without,
            seed=args.seed, max_objects=args.max_objects, noise_std=args.noise_std,
            progress=lambda done, _: bar.update(done - bar.n))
    elapsed = time.perf_counter() - start
    print(f'{total} images in {elapsed:.1f} s -> {args.out_dir}')
    for split in ('train', 'val', 'all'):
        print(f'\nco-occurrence ({split}):')
        print(format_co_occurrence(meta['co_occurrence'][split]))


if __name__ == '__main__':
    main()
