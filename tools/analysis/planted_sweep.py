"""MARS across the planted-bias family: one table over the generator's presets.

    python tools/analysis/planted_sweep.py [--presets default weak-bias ...]
        [--work-dir work_dirs/sweep] [--pipeline configs/pipelines/planted.py]
        [--num-train N --num-val M] [--cfg-options k=v ...] [--gpus N]

For every preset: generate the dataset, run the pipeline through Stage 3 and the
oracle with the same settings for all presets, then print one table (also
``WORK_DIR/sweep.md`` and ``sweep.json``). Each preset's run resumes like any
pipeline (``WORK_DIR/<preset>/``). Logic: ``mars_mm.apis.sweep``.
"""
import argparse
import warnings

warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention.*')
warnings.filterwarnings('ignore', message='.*pkg_resources is deprecated.*')

from mmengine.config import DictAction  # noqa: E402

from mars_mm.apis.sweep import DEFAULT_PIPELINE, run_sweep  # noqa: E402
from mars_mm.datasets.generators.planted_presets import PRESETS  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--presets', nargs='+', choices=list(PRESETS),
                        help='presets to run (default: all)')
    parser.add_argument('--work-dir', default='work_dirs/sweep')
    parser.add_argument('--pipeline', default=DEFAULT_PIPELINE,
                        help='a planted pipeline config (with dataset.generate)')
    parser.add_argument('--num-train', type=int, help='train images, every preset')
    parser.add_argument('--num-val', type=int, help='val images, every preset')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='pipeline overrides, the same for every preset')
    parser.add_argument('--gpus', type=int, default=None)
    parser.add_argument('--launcher', choices=('none', 'pytorch', 'slurm'))
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    run_sweep(args.presets, work_dir=args.work_dir, pipeline=args.pipeline,
              num_train=args.num_train, num_val=args.num_val,
              cfg_options=args.cfg_options, gpus=args.gpus, launcher=args.launcher)


if __name__ == '__main__':
    main()
