"""Nearest neighbours of every training image by global backbone feature (Stage 2).

    python tools/uss/precompute_knn.py CONFIG --out WORK_DIR/knn.npz [--ckpt CKPT]
        [--k 7] [--chunk-size 1024] [--device cpu] [--cfg-options k=v ...]
        [--launcher pytorch|slurm]

Global features are the mean-pooled frozen-backbone features; neighbours are the
top-k cosine matches excluding the image itself, computed in chunks of query rows (80k
COCO images fit in memory). Feature extraction is sharded over ranks
(``torchrun --nproc_per_node=N ... --launcher pytorch``); rank 0 writes the file.
Without ``--ckpt`` the backbone is initialised from the config (pretrained weights
through its ``init_cfg``), which is all training needs.
"""
import argparse

from mars_mm.apis.launch import (
    add_job_args,
    finalize_distributed,
    init_offline_distributed,
    load_config,
    parse_job_args,
)
from mars_mm.apis.uss import precompute_knn


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='kNN pairs for STEGO training')
    parser.add_argument('config', help='USS (STEGO) config')
    parser.add_argument('--out', required=True, help='output .npz file')
    parser.add_argument('--ckpt', default=None, help='optional model checkpoint')
    parser.add_argument('--k', type=int, default=7, help='neighbours per image')
    parser.add_argument('--chunk-size', type=int, default=1024,
                        help='query rows per similarity block (memory bound)')
    add_job_args(parser, device=True)
    return parse_job_args(parser)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.cfg_options, launcher=args.launcher,
                      data_root=args.data_root)
    init_offline_distributed(args.launcher)
    indices = precompute_knn(cfg, args.out, checkpoint=args.ckpt,
                             num_neighbors=args.k, chunk_size=args.chunk_size,
                             device=args.device)
    if indices is not None:
        print(f'wrote {indices.shape[1]} neighbours of {indices.shape[0]} images to '
              f'{args.out}')


if __name__ == '__main__':
    main()
    finalize_distributed()
