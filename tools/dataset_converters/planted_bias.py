"""Generate a planted-bias dataset in VOC layout.

Example::

    python tools/dataset_converters/planted_bias.py data/planted_bias
    python tools/dataset_converters/planted_bias.py data/planted_voc --preset voc-like
    python tools/dataset_converters/planted_bias.py out --num-train 1000 \\
        --classes boat train bird cat --bias-pairs boat:water train:rails:0.8:0.2

``--preset`` picks one dataset of the family (``--list-presets``); any other option
given explicitly replaces the preset's value. The output folder must be new,
empty, or this same dataset (its ``meta.json`` with the same settings, or the
``meta.partial.json`` of an interrupted run), which is then completed; a folder
holding anything else is refused and left as it is. See
``mars_mm.datasets.generators.planted_bias`` and ``docs/en/datasets.md``.
"""
import argparse
import os.path as osp
import sys
import time

from tqdm import tqdm

from mars_mm.datasets.generators.planted_bias import (
    format_co_occurrence,
    generate_preset,
)
from mars_mm.datasets.generators.planted_presets import PRESETS
from mars_mm.datasets.generators.planted_styles import CONTEXT_STYLES


def parse_pair(text: str) -> dict:
    """``cls:context`` or ``cls:context:p_with:p_without``."""
    parts = text.split(':')
    if len(parts) not in (2, 4):
        raise argparse.ArgumentTypeError(
            f'bias pair {text!r}: expected cls:context or cls:context:p_with:p_without')
    pair = dict(cls=parts[0], context=parts[1])
    if len(parts) == 4:
        try:
            pair.update(p_with=float(parts[2]), p_without=float(parts[3]))
        except ValueError as err:
            raise argparse.ArgumentTypeError(f'bias pair {text!r}: {err}') from err
    return pair


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('out_dir', nargs='?', help='output folder (VOC layout)')
    parser.add_argument('--preset', default='default', choices=sorted(PRESETS),
                        help='dataset of the family to start from (default: default)')
    parser.add_argument('--list-presets', action='store_true',
                        help='print the presets and their settings, then exit')
    # None = keep the preset's value
    parser.add_argument('--num-train', type=int)
    parser.add_argument('--num-val', type=int)
    parser.add_argument('--image-size', type=int, nargs=2, metavar=('H', 'W'))
    parser.add_argument('--classes', nargs='+',
                        help='foreground class names (background is added)')
    parser.add_argument('--bias-pairs', nargs='*', type=parse_pair,
                        help='cls:context[:p_with:p_without]; contexts with a '
                        f'built-in look: {", ".join(CONTEXT_STYLES)}')
    parser.add_argument('--p-with', type=float,
                        help='P(context | class present) for pairs without their own')
    parser.add_argument('--p-without', type=float,
                        help='P(context | class absent) for pairs without their own')
    parser.add_argument('--object-scale', type=float)
    parser.add_argument('--voc-ids', action='store_true', default=None,
                        help='write VOC 2012 class names and ids')
    parser.add_argument('--seed', type=int)
    parser.add_argument('--max-objects', type=int)
    parser.add_argument('--noise-std', type=float)
    args = parser.parse_args(argv)
    if not args.list_presets and not args.out_dir:
        parser.error('the output folder is required')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.list_presets:
        for name, settings in PRESETS.items():
            print(f'{name}: {settings or "(the generator defaults)"}')
        return
    overrides = {key: value for key, value in dict(
        num_train=args.num_train, num_val=args.num_val,
        image_size=tuple(args.image_size) if args.image_size else None,
        classes=args.classes, bias_pairs=args.bias_pairs, p_with=args.p_with,
        p_without=args.p_without, object_scale=args.object_scale,
        voc_ids=args.voc_ids, seed=args.seed, max_objects=args.max_objects,
        noise_std=args.noise_std).items() if value is not None}
    if osp.isfile(osp.join(args.out_dir, 'meta.json')) or osp.isfile(
            osp.join(args.out_dir, 'meta.partial.json')):
        print(f'note: {args.out_dir} already holds a planted-bias dataset: it is '
              'completed if it was made with these settings, refused otherwise',
              file=sys.stderr)
    start = time.perf_counter()
    with tqdm(desc=f'planted-bias images ({args.preset})') as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)
        try:
            meta = generate_preset(args.out_dir, args.preset, progress=progress,
                                   **overrides)
        except ValueError as err:
            sys.exit(f'error: {err}')
    elapsed = time.perf_counter() - start
    total = sum(meta['splits'].values())
    print(f'{total} images in {elapsed:.1f} s -> {args.out_dir}')
    for split in ('train', 'val', 'all'):
        print(f'\nco-occurrence ({split}):')
        print(format_co_occurrence(meta['co_occurrence'][split]))


if __name__ == '__main__':
    main()
