"""The one helper that every long offline job uses.

An offline job maps a list of items (usually image ids) to one output file each. This
module gives all of them the same behaviour:

* **sharding over ranks**: under ``torchrun``/Slurm every rank takes
  ``items[rank::world_size]``, so N GPUs (or N CPU processes) split the work without
  talking to each other;
* **resume**: an item whose output file exists is skipped (outputs are written with
  :func:`mars_mm.utils.io.atomic_write`, so an existing file is a complete file);
  a job whose outputs depend on their inputs' content passes ``is_done`` instead;
* **a settings record** (:func:`check_job_settings`): a job writes the settings
  its outputs depend on into ``<out_dir>/job_settings.json`` and refuses to add
  outputs made with other settings to the folder, so that a rerun with another
  checkpoint or other scales cannot silently keep the old files;
* **leftover clean-up**: temporary files of a killed run are removed at start;
* **a worker pool** for CPU-bound per-item work (CRF, PNG encoding);
* **a progress bar** on rank 0 with the number of skipped items.
"""
import glob
import hashlib
import json
import os
import os.path as osp
import warnings
from multiprocessing import get_context
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from tqdm import tqdm

from mars_mm.utils.io import check_output_dir, save_text

#: The settings record of an offline job's output folder.
JOB_RECORD = 'job_settings.json'


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
                    chunksize: int = 1,
                    is_done: Optional[Callable[[Any], bool]] = None,
                    reduce: Optional[Callable[[Any], None]] = None) -> List[Any]:
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
        is_done: with ``resume``, decides whether an item is finished (default:
            its output file exists); e.g. Stage 3 also checks that the file was
            made from the item's current inputs.
        reduce: called with each result as it arrives (in item order) instead of
            collecting it, so that a job over many items that only accumulates
            statistics keeps constant memory.

    Returns:
        list: results of ``process`` for the items processed in this call, in order
        (empty with ``reduce``).
    """
    rank, world_size = get_dist_info()
    mine = shard(items, rank, world_size) if shard_over_ranks else list(items)
    if output_path is not None:
        for folder in {osp.dirname(output_path(item)) or '.' for item in mine[:1]}:
            if osp.isdir(folder):
                remove_stale_temporaries(folder)
    if resume and is_done is not None:
        pending = [item for item in mine if not is_done(item)]
    elif resume and output_path is not None:
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
    keep = results.append if reduce is None else reduce
    try:
        if num_workers > 0 and len(pending) > 1:
            # fork keeps module state (registries, compat fixes) in workers and is the
            # default on Linux; spawn elsewhere.
            method = 'fork' if hasattr(os, 'fork') else 'spawn'
            with get_context(method).Pool(num_workers) as pool:
                for result in pool.imap(process, pending, chunksize=chunksize):
                    keep(result)
                    bar.update(1)
        else:
            for item in pending:
                keep(process(item))
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


# --------------------------------------------------------------- settings records
def digest(value: Any, length: int = 16) -> str:
    """Short SHA-256 of a JSON-able value (dict keys sorted; tuples as lists)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_digest(path: Optional[str], length: int = 16) -> Optional[str]:
    """Short SHA-256 of a file's bytes (a checkpoint: same weights, same digest,
    wherever the file lies); ``None`` for no file."""
    if path is None:
        return None
    sha = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 22), b''):
            sha.update(block)
    return sha.hexdigest()[:length]


def file_fingerprint(path: str) -> Tuple[int, int]:
    """``(size, mtime in ns)`` of a file: changes whenever the file is rewritten."""
    stat = os.stat(path)
    return int(stat.st_size), int(stat.st_mtime_ns)


def _plain(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists, ConfigDicts dicts)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _differences(previous: Any, current: Any, prefix: str = '') -> List[str]:
    if isinstance(previous, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(previous) | set(current)):
            found += _differences(previous.get(key), current.get(key),
                                  f'{prefix}{key}.')
        return found
    if previous != current:
        return [f'{prefix[:-1]}: {_short(previous)} -> {_short(current)}']
    return []


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + '...'


def claim_folder(out_dir: str, settings: Dict[str, Any], records: Sequence[str],
                 what: str) -> None:
    """Refuse to write into a folder holding files this job did not make, or made
    with other settings.

    A job that writes a whole folder (a generated dataset) would silently replace
    a user's files of the same names. The folder is the job's own when it holds
    one of ``records`` (JSON files the job writes, holding at least the keys of
    ``settings``); with the same ``settings`` the job may complete or redo it.

    Args:
        out_dir: the folder (a missing one, or one holding only hidden files,
            is always fine).
        settings: what the folder's content depends on (JSON-able).
        records: record file names, in order of preference.
        what: what the job makes, for the message (``a planted-bias dataset``).

    Raises:
        ValueError: naming the folder (and the record and each setting that
        differs).
    """
    check_output_dir(out_dir)
    if not osp.isdir(out_dir):
        return
    # hidden files (a driver's stage marker, .DS_Store, temporaries) are never
    # written over by the job's own files
    entries = sorted(name for name in os.listdir(out_dir) if not name.startswith('.'))
    if not entries:
        return
    record = next((osp.join(out_dir, name) for name in records
                   if osp.isfile(osp.join(out_dir, name))), None)
    if record is None:
        shown = ', '.join(entries[:4]) + (', ...' if len(entries) > 4 else '')
        raise ValueError(
            f'{out_dir}: the folder is not empty ({shown}) and holds no '
            f'{" or ".join(records)}: it was not made by this tool, and files of '
            f'the same names would be replaced; give a new or empty folder for '
            f'{what}')
    try:
        with open(record, encoding='utf-8') as handle:
            recorded = json.load(handle)
    except (OSError, ValueError) as err:
        raise ValueError(f'{record}: unreadable record ({err}); give a new or empty '
                         f'folder for {what}') from err
    recorded = {key: recorded.get(key) for key in settings} \
        if isinstance(recorded, dict) else {}
    changes = _differences(_plain(recorded), _plain(settings))
    if changes:
        raise ValueError(
            f'{record}: {out_dir} holds {what} made with other settings '
            f'({"; ".join(changes[:6])}); it is not overwritten: write to another '
            f'folder, or delete {out_dir} first')


def read_job_settings(out_dir: str, record: str = JOB_RECORD) -> Optional[dict]:
    """The settings recorded in a folder, or ``None`` without a record.

    Raises:
        ValueError: naming the record when it is not readable JSON.
    """
    path = osp.join(out_dir, record)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as handle:
            return json.load(handle)
    except (OSError, ValueError) as err:
        raise ValueError(f'{path}: unreadable settings record ({err}); delete it '
                         'only if every file of the folder is known to match the '
                         'current settings') from err


def check_job_settings(out_dir: str, settings: Dict[str, Any],
                       record: str = JOB_RECORD,
                       outputs: Optional[Callable[[str], bool]] = None) -> None:
    """Record the settings an output folder is made with; refuse other settings.

    Every offline job whose outputs depend on settings (checkpoint, scales,
    flip, the model config, input folders) calls this before writing. The first
    run writes ``<out_dir>/<record>``; a later run (resume, or a rerun into the
    same folder) must have the same settings, otherwise the files already there
    would be kept although they were made differently.

    Args:
        out_dir: the job's output folder.
        settings: JSON-able settings (compared after a JSON round trip).
        record: file name of the record.
        outputs: which file names count as outputs when the folder has no record
            (default: any file but the record and temporaries); such legacy
            outputs are kept with a warning.

    Raises:
        ValueError: naming the record and each setting that differs, or naming
        ``out_dir`` when it is a file.
    """
    check_output_dir(out_dir)
    current = _plain(settings)
    path = osp.join(out_dir, record)
    previous = read_job_settings(out_dir, record)
    if previous is not None:
        if previous != current:
            changes = _differences(previous, current) or ['(layout of the record)']
            raise ValueError(
                f'{path}: the files in {out_dir} were made with other settings '
                f'({"; ".join(changes)}); write to another output folder, or '
                f'delete {out_dir} to remake them all')
        return
    if osp.isdir(out_dir):
        is_output = outputs or (lambda name: name != record
                                and not name.startswith('.tmp-'))
        legacy = [name for name in os.listdir(out_dir) if is_output(name)]
        if legacy:
            warnings.warn(
                f'{out_dir} holds {len(legacy)} files but no {record} (made by an '
                'older version): they are kept and assumed to match the current '
                'settings', stacklevel=2)
    if get_dist_info()[0] == 0:
        save_text(path, json.dumps(current, indent=1, sort_keys=True) + '\n')
