"""Rewrite a folder of Stage 2 embeddings (``<stem>.npy``) as compact 4/8-bit files.

    python tools/uss/compact_embeddings.py IN_DIR OUT_DIR [--bits 4] [--pool 1]

Writes ``OUT_DIR/<stem>.q8.npz`` (:mod:`mars_mm.debias.quantised`); Stage 3 reads
them with ``--cfg-options debias.embedding_dir=OUT_DIR
debias.embedding_suffix=.q8.npz``. On COCO train, 4-bit codes take about 7.7 GB
instead of 54 GB and changed the debiased labels by at most 0.04 mIoU on the
planted presets measured (``docs/en/benchmarks.md``). Existing outputs are skipped.
"""
import argparse
import os
import os.path as osp

import numpy as np
from tqdm import tqdm

from mars_mm.debias.quantised import QUANTISED_SUFFIX, save_quantised_embedding
from mars_mm.utils.io import make_output_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('in_dir')
    parser.add_argument('out_dir')
    parser.add_argument('--bits', type=int, choices=(4, 8), default=4)
    parser.add_argument('--pool', type=int, default=1,
                        help='average pool x pool cells first (1: keep the grid)')
    args = parser.parse_args()
    names = sorted(name for name in os.listdir(args.in_dir) if name.endswith('.npy'))
    if not names:
        raise SystemExit(f'no .npy embeddings in {args.in_dir}')
    make_output_dir(args.out_dir)
    for name in tqdm(names, desc='compact embeddings'):
        out = osp.join(args.out_dir, name[:-len('.npy')] + QUANTISED_SUFFIX)
        if not osp.exists(out):
            save_quantised_embedding(out, np.load(osp.join(args.in_dir, name)),
                                     args.pool, args.bits)


if __name__ == '__main__':
    main()
