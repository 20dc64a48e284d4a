"""Does the USS embedding or the centroid selection limit MARS? (planted-bias data)

    python tools/analysis/debias_separability.py CONFIG --work-dir RUN
        [--cfg-options ...]

Reads a finished debias run (its config and work dir) and prints, inside the baseline
foreground, how well the debias map ranks true object pixels above planted context
(AUC), once with the run's debiased centroids and once with oracle centroids (the
mean code of each class's GT object pixels). Needs ``SegmentationClass/`` and
``PlantedContext/`` under the dataset's data root.
"""
import argparse
import os.path as osp

from mmengine.config import DictAction

from mars_mm.apis.debias import build_samples
from mars_mm.apis.launch import load_config
from mars_mm.debias.analysis import map_separability
from mars_mm.debias.settings import settings_from_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir)
    samples, class_names = build_samples(cfg)
    settings = settings_from_config(cfg, class_names)
    root = osp.dirname(osp.dirname(samples[0].gt_path))
    result = map_separability([s.stem for s in samples],
                              osp.join(root, 'SegmentationClass'),
                              osp.join(root, 'PlantedContext'), settings)
    for name, scores in result.items():
        print(f'{name:<9} centroids: AUC(object > context) {scores["auc"]:.3f}; map '
              f'mean on objects {scores["object_mean"]:.3f}, on context '
              f'{scores["context_mean"]:.3f}')


if __name__ == '__main__':
    main()
