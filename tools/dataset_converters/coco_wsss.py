"""Convert COCO 2014 instances to class-index PNG masks and image-tag files.

Example::

    python tools/dataset_converters/coco_wsss.py data/coco2014 --nproc 2

Reads ``<COCO_ROOT>/annotations/instances_<split>.json`` and writes, under
``--out-dir`` (default COCO_ROOT), ``SegmentationClass/<split>/<stem>.png`` (0
background, 1..80 the categories in id order, 255 crowd-only pixels; smaller
instances on top of larger ones), ``ImageSets/<split>.txt`` and
``tags/<split>.json``. Resumable, parallel (``--nproc``), shards over ranks
(``--launcher``). See docs/en/datasets.md for the rules.
"""
import argparse
import os.path as osp

from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    parse_job_args,
)
from mars_mm.datasets.converters.coco import convert_coco


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('coco_root', help='folder holding annotations/')
    parser.add_argument('--out-dir', help='output root (default: COCO_ROOT)')
    parser.add_argument('--splits', nargs='+', default=['train2014', 'val2014'])
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    add_job_args(parser, resume=True, cfg_options=False)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    init_offline_distributed(args.launcher)
    out_dir = args.out_dir or args.coco_root
    for split in args.splits:
        json_path = osp.join(args.coco_root, 'annotations', f'instances_{split}.json')
        summary = convert_coco(json_path, out_dir, split,
                               num_workers=args.nproc if args.nproc > 1 else 0,
                               resume=not args.no_resume)
        print(f'{split}: {summary["images"]} images ({summary["without_annotation"]} '
              f'without annotation), {summary["classes"]} classes; converted now '
              f'{summary["converted"]}')


if __name__ == '__main__':
    main()
    finalize_distributed()
