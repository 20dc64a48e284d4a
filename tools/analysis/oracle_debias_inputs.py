"""Oracle inputs that isolate where the MARS chain loses accuracy.

    python tools/analysis/oracle_debias_inputs.py DATA_ROOT OUT_DIR
        [--split ImageSets/Segmentation/train.txt] [--num-classes C+1]
        [--biased 1,2]

Writes, for a planted-bias dataset (GT masks + ``PlantedContext/``):

* ``OUT_DIR/embeddings/<stem>.npy``: an ideal USS embedding (one-hot plain
  background / class, context = background mixed with a context channel by
  ``--context-weight``, pooled at stride 8): run the debias tool with it to measure
  what MARS does when USS is ideal;
* ``OUT_DIR/labels/<stem>.png``: a perfectly biased baseline (GT + context painted
  as the co-occurring class): run it to measure MARS without CAM errors.
"""
import argparse
import json
import os.path as osp

from mars_mm.datasets.wsss_base import read_split_file
from mars_mm.debias.analysis import oracle_biased_label, oracle_embedding
from mars_mm.utils.io import load_label_png, save_array, save_label_png


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('data_root')
    parser.add_argument('out_dir')
    parser.add_argument('--split', default='ImageSets/Segmentation/train.txt')
    parser.add_argument('--num-classes', type=int)
    parser.add_argument('--biased', help='comma-separated class ids')
    parser.add_argument('--context-weight', type=float, default=0.5)
    args = parser.parse_args()
    meta_path = osp.join(args.data_root, 'meta.json')
    meta = {}
    if osp.isfile(meta_path):
        with open(meta_path) as handle:
            meta = json.load(handle)
    classes = meta.get('classes', [])
    num_classes = args.num_classes or len(classes)
    if not num_classes:
        raise SystemExit(f'give --num-classes (no classes in {meta_path})')
    biased = [int(c) for c in args.biased.split(',')] if args.biased else \
        [classes.index(pair['cls']) for pair in meta.get('bias_pairs', [])]
    # names checked as every dataset checks them: a line such as ../../x would
    # put the files outside OUT_DIR
    stems = read_split_file(osp.join(args.data_root, args.split))
    for stem in stems:
        gt = load_label_png(osp.join(args.data_root, 'SegmentationClass',
                                     stem + '.png'))
        context = load_label_png(osp.join(args.data_root, 'PlantedContext',
                                          stem + '.png')) > 0
        save_array(osp.join(args.out_dir, 'embeddings', stem + '.npy'),
                   oracle_embedding(gt, context, num_classes,
                                    context_weight=args.context_weight))
        save_label_png(osp.join(args.out_dir, 'labels', stem + '.png'),
                       oracle_biased_label(gt, context, biased))
    print(f'{len(stems)} oracle embeddings and labels in {args.out_dir}')


if __name__ == '__main__':
    main()
