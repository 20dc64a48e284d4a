"""The one helper that every long offline job uses.

An offline job maps a list of items (usually image ids) to one output file each. This
module gives all of them the same behaviour:

* **sharding over ranks**: under ``torchrun``/Slurm every rank takes
  ``items[rank::world_size]``, so N GPUs (or N CPU processes) split the work without
  talking to each other;
* **resume**: an item whose output file exists is skipped (outputs are written with
  :func:`mars_mm.utils.io.atomic_write`, so an existing file is a complete file);
* **leftover clean-up**: temporary files of a killed run are removed at start;
* **a worker pool** for CPU-bound per-item work (CRF, PNG encoding);
* **a progress bar** on rank 0 with the number of skipped items.
"""
import glob
import os
import os.path as osp
from multiprocessing import get_context
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from tqdm import tqdm


def get_dist_info() -> Tuple[int, int]:
    """(rank, world_size) from an initialised process group, else the environment.

    Falling back to ``RANK``/``WORLD_SIZE`` (torchrun) and ``SLURM_PROCID``/
    ``SLURM_NTASKS`` lets pure-CPU jobs shard without creating a process group.
    """
    try:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    for rank_key, world_key in (('RANK', 'WORLD_SIZE'),
                                ('SLURM_PROCID', 'SLURM_NTASKS')):
        if rank_key in os.environ and world_key in os.environ:
            return int(os.environ[rank_key]), int(os.environ[world_key])
    return 0, 1


def default_device(device: Optional[str] = None) -> str:
    """``device`` if given, else this rank's GPU (``cuda:LOCAL_RANK``), else ``cpu``.

    Under torchrun/Slurm every rank of an offline job or of inference takes its own
    GPU; ``LOCAL_RANK`` is set by the launcher (or by ``--local-rank``).
    """
    if device is not None:
        return device
    import torch
    if torch.cuda.is_available():
        return f'cuda:{int(os.environ.get("LOCAL_RANK", 0))}'
    return 'cpu'


def shard(items: Sequence, rank: Optional[int] = None,
          world_size: Optional[int] = None) -> list:
    """The share of ``items`` that ``rank`` processes (strided, so shards balance)."""
    if rank is None or world_size is None:
        rank, world_size = get_dist_info()
    if not 0 <= rank < world_size:
        raise ValueError(f'rank {rank} outside world size {world_size}')
    return list(items[rank::world_size])


def remove_stale_temporaries(out_dir: str) -> int:
    """Delete ``.tmp-*`` files left by a killed run; returns how many."""
    removed = 0
    for path in glob.glob(osp.join(out_dir, '**', '.tmp-*'), recursive=True):
        try:
            os.remove(path)
            removed += 1
        except FileNotFoundError:  # another rank removed it first
            pass
    return removed


def run_offline_job(items: Sequence,
                    process: Callable[[Any], Any],
                    output_path: Optional[Callable[[Any], str]] = None,
                    num_workers: int = 0,
                    desc: str = 'processing',
                    resume: bool = True,
                    shard_over_ranks: bool = True,
                    show_progress: Optional[bool] = None,
                    chunksize: int = 1) -> List[Any]:
    """Run ``process`` on this rank's share of ``items``, skipping finished ones.

    Args:
        items: all items of the job (every rank passes the same list).
        process: called once per pending item; it must write the item's output
            atomically (see :mod:`mars_mm.utils.io`). Its return values are collected.
            With ``num_workers > 0`` it must be picklable (a module-level function or
            a ``functools.partial`` of one).
        output_path: maps an item to its output file; with ``resume`` an item whose
            file exists is skipped. ``None`` disables skipping.
        num_workers: processes in a pool (0 runs in this process).
        desc: progress-bar label.
        resume: skip items whose output exists.
        shard_over_ranks: take only ``items[rank::world_size]``.
        show_progress: defaults to rank 0 only.
        chunksize: items handed to a worker at a time.

    Returns:
        list: results of ``process`` for the items processed in this call, in order.
    """
    rank, world_size = get_dist_info()
    mine = shard(items, rank, world_size) if shard_over_ranks else list(items)
    if output_path is not None:
        for folder in {osp.dirname(output_path(item)) or '.' for item in mine[:1]}:
            if osp.isdir(folder):
                remove_stale_temporaries(folder)
    if resume and output_path is not None:
        pending = [item for item in mine if not osp.exists(output_path(item))]
    else:
        pending = mine
    if show_progress is None:
        show_progress = rank == 0
    skipped = len(mine) - len(pending)
    label = f'{desc} (rank {rank}/{world_size}, {skipped} done before)' \
        if (world_size > 1 or skipped) else desc
    bar = tqdm(total=len(pending), desc=label, disable=not show_progress,
               dynamic_ncols=True)
    results = []
    try:
        if num_workers > 0 and len(pending) > 1:
            # fork keeps module state (registries, compat fixes) in workers and is the
            # default on Linux; spawn elsewhere.
            method = 'fork' if hasattr(os, 'fork') else 'spawn'
            with get_context(method).Pool(num_workers) as pool:
                for result in pool.imap(process, pending, chunksize=chunksize):
                    results.append(result)
                    bar.update(1)
        else:
            for item in pending:
                results.append(process(item))
                bar.update(1)
    finally:
        bar.close()
    return results


def barrier() -> None:
    """Wait for all ranks when a process group exists; a no-op otherwise."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def iter_chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
