"""MARS Stage 3: debias a folder of baseline pseudo labels.

    python tools/mars/debias.py CONFIG [--work-dir DIR] [--cfg-options k=v ...]
        [--launcher {none,pytorch,slurm,mpi}] [--no-resume] [--no-report]
        [--report-only]

Writes ``centroids.npz`` (+ ``centroid_vectors.npy``), ``labels/<stem>.png`` and
``report/`` into the work dir. Resumes a killed run by default. Multi-process:
``torchrun --nproc_per_node=N tools/mars/debias.py CONFIG --launcher pytorch``.
"""
import argparse

from mars_mm.apis.debias import debias_from_config
from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    load_config,
    parse_job_args,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='MARS debiasing (Stage 3)')
    parser.add_argument('config', help='a configs/mars/debias_*.py file')
    parser.add_argument('--work-dir', help='output folder (default: config/work_dirs)')
    parser.add_argument('--no-report', action='store_true',
                        help='skip the bias report')
    parser.add_argument('--report-only', action='store_true',
                        help='only (re)write the report of a finished run')
    add_job_args(parser, resume=True)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, args.work_dir, args.launcher,
                      data_root=args.data_root)
    init_offline_distributed(args.launcher)
    debias_from_config(cfg, resume=not args.no_resume, report=not args.no_report,
                       report_only=args.report_only)


if __name__ == '__main__':
    main()
    finalize_distributed()
