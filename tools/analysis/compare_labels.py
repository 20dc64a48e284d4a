"""Agreement of two folders of label PNGs, per class, with a gallery of differences.

Neither folder is taken as ground truth: for every value (the classes, 254 removed,
255 ignored) it counts the pixels each folder gives it and both give it (IoU of A vs
B), the confusion between the two, where each folder's 254 / 255 pixels sit in the
other, and shows the images that differ most. Example (README, "Compare with the
official MARS masks")::

    python tools/analysis/compare_labels.py \\
        work_dirs/pipelines/voc12aug/debias/labels data/WSS/VOC2012/MARS/train_aug \\
        --classes voc --images data/VOCdevkit/VOC2012/JPEGImages \\
        --out work_dirs/compare/mars --nproc 8

Writes ``report.md`` / ``report.html`` (tables and gallery), ``report.json``,
``confusion.csv`` (rows A, columns B) and ``gallery/*.png`` into ``--out``.
"""
import argparse

from mars_mm.apis.compare_labels import (
    MISSING_MODES,
    class_names_from,
    compare_labels,
)
from mars_mm.apis.compare_report import summary_text
from mars_mm.apis.launch import positive_int


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('dir_a', help='folder A of <stem>.png labels')
    parser.add_argument('dir_b', help='folder B of <stem>.png labels')
    parser.add_argument('--classes', default='voc',
                        help='voc (21), coco (81), a number of classes, or a '
                        'classes.txt of foreground names (background added)')
    parser.add_argument('--out', help='report folder (without it: console only)')
    parser.add_argument('--images', help='folder of <stem>.jpg shown in the gallery')
    parser.add_argument('--suffix', default='.png')
    parser.add_argument('--missing', choices=MISSING_MODES, default='error',
                        help='a label without counterpart: error (default), or '
                        'skip it and compare the common stems')
    parser.add_argument('--gallery', type=int, default=12,
                        help='number of most different images shown (0: none)')
    parser.add_argument('--nproc', type=positive_int, default=1,
                        help='worker processes')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    report = compare_labels(args.dir_a, args.dir_b, class_names_from(args.classes),
                            out_dir=args.out, image_dir=args.images,
                            suffix=args.suffix, missing=args.missing,
                            gallery_size=max(0, args.gallery),
                            num_workers=args.nproc if args.nproc > 1 else 0)
    print(summary_text(report))
    skipped = report['skipped']
    if skipped['only_a'] or skipped['only_b']:
        print(f'skipped {len(skipped["only_a"])} labels only in A and '
              f'{len(skipped["only_b"])} only in B')
    if args.out:
        print(f'report: {args.out}/report.md (and report.html)')


if __name__ == '__main__':
    main()
