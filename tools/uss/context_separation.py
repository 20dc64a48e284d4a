"""Does the USS embedding tell planted context from the object it co-occurs with?

    python tools/uss/context_separation.py CONFIG EMB_DIR --context-dir DIR
        --classes boat train [--split train] [--cfg-options k=v ...]

For the planted-bias dataset (``PlantedContext/<stem>.png`` marks the planted context
bands). For each biased class prints the mean cosine of its co-occurring context
pixels to context pixels of images without the class and to the class's object
pixels; MARS needs the first clearly higher than the second.
"""
import argparse

from mmengine.config import DictAction

from mars_mm.apis.launch import load_config
from mars_mm.apis.uss import context_separation, uss_image_dataset


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Context/object separation')
    parser.add_argument('config', help='USS (STEGO) config of the dataset')
    parser.add_argument('emb_dir', help='folder of <stem>.npy embeddings')
    parser.add_argument('--context-dir', required=True,
                        help='folder of <stem>.png planted-context masks')
    parser.add_argument('--classes', nargs='+', required=True,
                        help='names of the biased classes')
    parser.add_argument('--split', default='train', choices=('train', 'val', 'test'))
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options)
    dataset = uss_image_dataset(cfg, args.split)
    names = list(dataset.metainfo['classes'])
    unknown = [name for name in args.classes if name not in names]
    if unknown:
        raise SystemExit(f'unknown classes {unknown}; the dataset has {names}')
    ids = [names.index(name) for name in args.classes]
    results = context_separation(args.emb_dir, dataset, args.context_dir, ids)
    print(f'{"class":<10}{"cos(ctx, ctx elsewhere)":>25}{"cos(ctx, object)":>18}'
          f'{"gap":>8}{"closer to ctx":>15}{"pixels":>8}')
    for cls, scores in results.items():
        print(f'{names[cls]:<10}{scores["cos_context_elsewhere"]:25.3f}'
              f'{scores["cos_object"]:18.3f}{scores["gap"]:8.3f}'
              f'{scores["closer_to_context"]:15.3f}{scores["context_pixels"]:8d}')


if __name__ == '__main__':
    main()
