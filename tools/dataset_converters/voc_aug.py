"""Convert SBD's ``cls/*.mat`` to PNG masks and write VOC's ``train_aug`` split.

Example::

    python tools/dataset_converters/voc_aug.py data/VOCdevkit/VOC2012 \\
        data/benchmark_RELEASE/dataset --nproc 8

Writes ``<VOC_ROOT>/SegmentationClassAug/*.png`` (VOC masks where VOC has one, SBD's
otherwise) and ``<VOC_ROOT>/ImageSets/Segmentation/train_aug.txt`` (10,582 images).
Resumable: masks already written are skipped. Shards over ranks with ``--launcher``.
"""
import argparse

from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    parse_job_args,
)
from mars_mm.datasets.converters.sbd import convert_sbd


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('voc_root', help='VOCdevkit/VOC2012')
    parser.add_argument('sbd_root', help='SBD benchmark_RELEASE/dataset (cls/, '
                        'train.txt, val.txt)')
    parser.add_argument('--out-name', default='SegmentationClassAug',
                        help='mask folder created under VOC_ROOT')
    parser.add_argument('--nproc', type=int, default=1, help='worker processes')
    add_job_args(parser, resume=True, cfg_options=False)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    init_offline_distributed(args.launcher)
    summary = convert_sbd(args.voc_root, args.sbd_root, out_name=args.out_name,
                          num_workers=args.nproc if args.nproc > 1 else 0,
                          resume=not args.no_resume)
    print(f'train_aug: {summary["images"]} images; converted now '
          f'{summary["converted"]} ({summary["from_voc"]} VOC masks, '
          f'{summary["from_sbd"]} from SBD)')


if __name__ == '__main__':
    main()
    finalize_distributed()
