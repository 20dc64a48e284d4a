"""SIGKILL a job at chosen moments, resume it, record what happened (a test helper).

    python -m tests.kill_harness train CONFIG WORK_DIR OUT.json [--kills 20]
        [--seed 0] [-- TRAIN_ARGS ...]
    python -m tests.kill_harness debias SCENE WORK_DIR OUT.json

One process imports everything once; every attempt is a ``fork`` of it (cheap),
killed with SIGKILL, either by the parent after a random delay (seeded) or by
itself at a targeted moment of a checkpoint save:

* ``write``: half of the checkpoint's bytes are on disk (under the temporary
  name the file backend writes to);
* ``rename``: the checkpoint is complete under its temporary name, not renamed;
* ``record``: renamed, ``last_checkpoint`` not yet rewritten;
* ``empty-record``: ``last_checkpoint`` opened for rewriting (so emptied) by
  mmengine's hook, nothing written to it yet;
* ``remove``: everything written, the old checkpoint not yet deleted.

The ``write`` kill works for any hook that writes through a file backend's
``put``; the others patch ``os.replace``, ``os.remove`` and the ``open`` that
mmengine's ``CheckpointHook`` writes ``last_checkpoint`` with.

``debias`` kills Stage 3 inside the merge (while the raw vector file, the
``.npy`` or the centroid file is written) and then lets it finish.

The JSON record lists every attempt (how it ended, the newest complete
checkpoint before it, the iteration it resumed from) for the tests to check.
"""
import argparse
import glob
import json
import os
import os.path as osp
import random
import re
import runpy
import signal
import sys
import time
import traceback

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TRAIN = osp.join(REPO, 'tools', 'train.py')
PHASES = ('write', 'rename', 'record', 'empty-record', 'remove')


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _countdown(nth: int):
    state = dict(left=nth)

    def hit() -> bool:
        state['left'] -= 1
        return state['left'] == 0
    return hit


class _HalfThenDie:
    """A file handle whose first write puts half the bytes on disk and dies."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def write(self, data) -> None:
        self._handle.write(data[:len(data) // 2])
        self._handle.flush()
        os.fsync(self._handle.fileno())
        _die()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._handle, name)


def install_self_kill(phase: str, nth: int = 1) -> None:
    """SIGKILL this process at the ``nth`` checkpoint save's ``phase``."""
    hit = _countdown(nth)
    if phase == 'write':
        # the checkpoint file's write is cut in half: any hook whose backend
        # writes the bytes with open(..., 'wb') (mmengine's local backend, ours)
        import builtins

        import mmengine.fileio.backends.local_backend as local_backend

        import mars_mm.engine.atomic_backend as atomic_backend

        def open_(path, mode='r', *args, **kwargs):
            handle = builtins.open(path, mode, *args, **kwargs)
            if 'w' in mode and str(path).endswith('.pth') and hit():
                return _HalfThenDie(handle)
            return handle
        for module in (local_backend, atomic_backend):
            module.open = open_
    elif phase == 'rename':
        original_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if str(dst).endswith('.pth') and hit():
                _die()
            return original_replace(src, dst, *args, **kwargs)
        os.replace = replace
    elif phase in ('record', 'empty-record'):
        import builtins

        import mmengine.hooks.checkpoint_hook as hook_module

        def open_(path, mode='r', *args, **kwargs):
            writing = osp.basename(str(path)) == 'last_checkpoint' and 'w' in mode
            if writing and phase == 'record' and hit():
                _die()
            handle = builtins.open(path, mode, *args, **kwargs)
            if writing and phase == 'empty-record' and hit():
                _die()  # opened with 'w': the record is empty now
            return handle
        hook_module.open = open_
    elif phase == 'remove':
        original_remove = os.remove

        def remove(path, *args, **kwargs):
            name = osp.basename(str(path))
            if name.endswith('.pth') and not name.startswith('.tmp-') and hit():
                _die()
            return original_remove(path, *args, **kwargs)
        os.remove = remove
    else:
        raise ValueError(f'unknown phase {phase!r}')


def _redirect_output(log_path: str) -> None:
    descriptor = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def fork(target, log_path: str) -> int:
    """Run ``target()`` in a forked child writing to ``log_path``; its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _redirect_output(log_path)
        target()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (
            0 if exit_.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child reports and exits
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


#: Logged by mmengine's CheckpointHook.before_train: training starts.
STARTED = 'Checkpoints will be saved to'


def wait(pid: int, kill_after=None, timeout: float = 300.0, log: str = None,
         timing: dict = None) -> str:
    """Wait for a child (SIGKILL it after ``kill_after`` seconds); how it ended.

    With ``log``, ``timing`` receives ``started`` (seconds until the log shows
    :data:`STARTED`) and ``total`` (seconds until the child ended).
    """
    start = time.time()
    killed_by_us = False
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        elapsed = time.time() - start
        if timing is not None and 'started' not in timing and log \
                and osp.exists(log):
            with open(log, errors='replace') as handle:
                if STARTED in handle.read():
                    timing['started'] = elapsed
        if done:
            if timing is not None:
                timing['total'] = elapsed
            break
        if kill_after is not None and not killed_by_us and elapsed >= kill_after:
            os.kill(pid, signal.SIGKILL)
            killed_by_us = True
        if elapsed > timeout:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return 'timeout'
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        return f'signal {os.WTERMSIG(status)}'
    return f'exit {os.WEXITSTATUS(status)}'


# -------------------------------------------------------------------- training
def complete_checkpoints(work_dir: str) -> dict:
    """``{path: iteration}`` of the resumable checkpoints (``iter_N.pth``,
    ``epoch_N.pth``; not ``best_*``, saved without the optimizer) that load."""
    import torch
    found = {}
    for path in glob.glob(osp.join(work_dir, '*.pth')):
        if not re.match(r'^(epoch|iter)_\d+\.pth$', osp.basename(path)):
            continue
        try:
            checkpoint = torch.load(path, map_location='cpu', weights_only=False)
            found[path] = int(checkpoint['meta']['iter'])
        except Exception:  # noqa: BLE001 - a broken file is simply not complete
            pass
    return found


def _resumed_from(log_path: str):
    with open(log_path, errors='replace') as handle:
        match = re.search(r'resumed epoch: \d+, iter: (\d+)', handle.read())
    return int(match.group(1)) if match else None


def _train(argv):
    def run():
        sys.argv = [TRAIN, *argv]
        runpy.run_path(TRAIN, run_name='__main__')
    return run


def kill_training(config: str, work_dir: str, out: str, kills: int, seed: int,
                  extra: list, reference: str, window: float = 0.08) -> None:
    """Train with ``kills`` SIGKILLs (half targeted at saves, half at random
    times), each attempt resuming the last; then let it finish.

    A random kill comes after a delay drawn uniformly between 0.2 s and the
    start-up time plus ``window`` of the training time, both measured on the
    uninterrupted ``reference`` run (and the start-up again on every attempt):
    it lands in the start-up (config, model, resume) or in training, and the run
    does not finish before all kills are done.
    """
    import mars_mm  # noqa: F401  (import once, before forking)
    os.makedirs(work_dir, exist_ok=True)
    os.makedirs(reference, exist_ok=True)
    log = osp.join(reference, 'reference.log')
    timing = {}
    result = dict(reference=wait(fork(_train([config, '--work-dir', reference,
                                              *extra]), log),
                                 log=log, timing=timing))
    startup = timing.get('started', timing['total'])
    training = max(timing['total'] - startup, 0.1)
    result['timing'] = dict(startup=round(startup, 2), training=round(training, 2))
    rng = random.Random(seed)
    argv = [config, '--work-dir', work_dir, '--resume', *extra]
    attempts, index = [], 0
    while sum(a['ended'] == 'signal 9' for a in attempts) < kills \
            and index < 3 * kills:
        if index % 2 == 0:
            event = dict(kind='self', phase=PHASES[(index // 2) % len(PHASES)],
                         nth=1 + rng.randrange(2))
        else:
            event = dict(kind='timer', delay=round(rng.uniform(
                0.2, startup + window * training), 2))
        before = complete_checkpoints(work_dir)
        newest = max(before.values(), default=None)
        log = osp.join(work_dir, f'attempt{index:02d}.log')

        def child(event=event):
            if event['kind'] == 'self':
                install_self_kill(event['phase'], event['nth'])
            _train(argv)()

        pid = fork(child, log)
        timing = {}
        ended = wait(pid, kill_after=event.get('delay'), log=log, timing=timing)
        if 'started' in timing:  # resuming gets slower as the replay grows
            startup = timing['started']
        after = complete_checkpoints(work_dir)
        attempts.append(dict(event, ended=ended, newest_before=newest,
                             resumed_from=_resumed_from(log),
                             newest_after=max(after.values(), default=None),
                             files=sorted(os.listdir(work_dir))))
        index += 1
    log = osp.join(work_dir, 'final.log')
    newest = max(complete_checkpoints(work_dir).values(), default=None)
    final = dict(ended=wait(fork(_train(argv), log)), newest_before=newest)
    final['resumed_from'] = _resumed_from(log)
    final['files'] = sorted(os.listdir(work_dir))
    result.update(attempts=attempts, final=final)
    with open(out, 'w') as handle:
        json.dump(result, handle, indent=1)


# ---------------------------------------------------------------------- debias
DEBIAS_KILLS = (
    # (function of mars_mm.debias.passes to wrap, when to die)
    ('raw', 'the raw vector file is half written (.tmp-*.raw)'),
    ('npy', 'the raw file is renamed, the .npy being written (.tmp-*.npy)'),
    ('summary', 'centroid_vectors.npy written, centroids.npz not yet'),
)


def _debias_self_kill(point: str) -> None:
    import numpy as np

    from mars_mm.debias import formats, passes
    if point == 'raw':
        original_load = passes.load_image_centroids
        count = dict(n=0)

        def load(path):
            count['n'] += 1
            if count['n'] == 3:  # two images' vectors are in the temporary file
                _die()
            return original_load(path)
        passes.load_image_centroids = load
    elif point == 'npy':
        original_header = np.lib.format.write_array_header_1_0

        def header(handle, info):
            original_header(handle, info)
            handle.flush()
            _die()
        formats.np.lib.format.write_array_header_1_0 = header
    elif point == 'summary':
        def save(path, arrays):
            _die()
        passes.save_centroid_file = save


def kill_debias(scene_root: str, work_dir: str, out: str) -> None:
    from mars_mm.debias.job import debias_pseudo_labels
    from tests.debias_fixtures import scene_samples, scene_settings
    with open(osp.join(scene_root, 'scene.json')) as handle:
        scene = json.load(handle)
    samples = scene_samples(scene)
    settings = scene_settings(scene, work_dir)
    attempts = []
    for point, what in DEBIAS_KILLS:
        def child(point=point):
            _debias_self_kill(point)
            debias_pseudo_labels(samples, settings, report=False)
        ended = wait(fork(child, osp.join(osp.dirname(work_dir), f'{point}.log')))
        attempts.append(dict(point=point, what=what, ended=ended,
                             files=sorted(os.listdir(work_dir))))
    debias_pseudo_labels(samples, settings, report=False)
    with open(out, 'w') as handle:
        json.dump(dict(attempts=attempts, files=sorted(os.listdir(work_dir))),
                  handle, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = parser.add_subparsers(dest='job', required=True)
    train = sub.add_parser('train')
    train.add_argument('config')
    train.add_argument('work_dir')
    train.add_argument('out')
    train.add_argument('--kills', type=int, default=20)
    train.add_argument('--seed', type=int, default=0)
    train.add_argument('--reference', required=True,
                       help='work dir of an uninterrupted run (also times it)')
    debias = sub.add_parser('debias')
    debias.add_argument('scene')
    debias.add_argument('work_dir')
    debias.add_argument('out')
    argv = sys.argv[1:]
    extra = argv[argv.index('--') + 1:] if '--' in argv else []
    args = parser.parse_args(argv[:argv.index('--')] if '--' in argv else argv)
    if args.job == 'train':
        kill_training(args.config, args.work_dir, args.out, args.kills, args.seed,
                      extra, reference=args.reference)
    else:
        kill_debias(args.scene, args.work_dir, args.out)


if __name__ == '__main__':
    main()
