"""Run the whole MARS pipeline from one pipeline config, resumably.

    python tools/mars/run_pipeline.py PIPELINE_CONFIG [--work-dir DIR]
        [--data-root DIR] [--gpus N] [--launcher none|pytorch|slurm]
        [--from STAGE] [--to STAGE] [--cfg-options k=v ...] [--dry-run] [--verbose]

Stages: dataset, cam_train, cams, pseudo_labels, uss_train, embeddings, debias,
oracle, seg_baseline, seg_mars, test, results. Each stage's outputs feed the next;
a stage whose outputs are complete and were made with the same settings is
skipped, a changed setting is named (old -> new) and reruns the stage and what
follows. The results table ends the run (``WORK_DIR/results.md`` and
``results.json``). Pipelines: ``configs/pipelines/``; logic:
``mars_mm.apis.pipeline``.
"""
import argparse
import sys
import warnings

# the console shows stage lines and progress bars; the tools' own warnings are in
# each stage's log
warnings.filterwarnings('ignore', message='.*MultiScaleDeformableAttention.*')
warnings.filterwarnings('ignore', message='.*pkg_resources is deprecated.*')

from mmengine.config import DictAction  # noqa: E402

from mars_mm.apis.pipeline import (  # noqa: E402
    STAGES,
    PipelineConfigError,
    StageFailed,
    run_pipeline,
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='a configs/pipelines/*.py file')
    parser.add_argument('--work-dir', help='replaces the pipeline\'s work_dir')
    parser.add_argument('--data-root', help='replaces the pipeline\'s data root')
    parser.add_argument('--gpus', type=int, default=None,
                        help='processes per distributed stage (default: the '
                        'pipeline\'s `gpus`, else 1)')
    parser.add_argument('--launcher', choices=('none', 'pytorch', 'slurm'),
                        default=None, help='none (N > 1 GPUs: torchrun), pytorch '
                        '(torchrun), slurm (srun; PARTITION, GPUS_PER_NODE, '
                        'CPUS_PER_TASK, SRUN_ARGS from the environment)')
    parser.add_argument('--from', dest='from_stage', choices=STAGES,
                        help='start at this stage (earlier outputs used as they are)')
    parser.add_argument('--to', dest='to_stage', choices=STAGES,
                        help='stop after this stage')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override pipeline settings, e.g. '
                        'seg_mars.schedule.max_iters=1000')
    parser.add_argument('--dry-run', action='store_true',
                        help='print every command with resolved paths; run nothing')
    parser.add_argument('--verbose', action='store_true',
                        help='print the tools\' output (always in <stage>/stage.log)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        run_pipeline(args.config, work_dir=args.work_dir, data_root=args.data_root,
                     from_stage=args.from_stage, to_stage=args.to_stage,
                     gpus=args.gpus, launcher=args.launcher,
                     cfg_options=args.cfg_options, dry_run=args.dry_run,
                     verbose=args.verbose)
    except (PipelineConfigError, StageFailed, FileNotFoundError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
