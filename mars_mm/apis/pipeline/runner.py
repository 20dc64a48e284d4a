"""Run the planned stages: stamps, skipping, launching, dry run, progress.

Every stage is skipped when its stamp holds the digest it would run with and its
outputs are complete; otherwise the driver says why it runs (the settings that
changed, old -> new, or a killed run it resumes), removes stale outputs where
needed, runs the stage's tools as subprocesses (``sys.executable tools/...``, under
torchrun or srun for ``--gpus N``) and stamps it. One console line per stage with
its elapsed time; a progress bar inside each stage; each tool's output goes to
``<stage dir>/stage.log`` (and is printed with ``verbose``).
"""
import os
import os.path as osp
import re
import resource
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Union

from mmengine.config import Config

from .config import STAGES, PipelineConfigError, check_stage_name, load_pipeline_config
from .context import PipelineContext
from .seg_stages import plan_all
from .stages import Command, Stage
from .stamps import (
    DONE,
    RUNNING,
    clean,
    describe_changes,
    has_outputs,
    read_stamp,
    remove_stamp,
    settings_digest,
    write_stamp,
)

TQDM_PROGRESS = re.compile(rb'(?:^|\s)([^:|\r\n]*?):?\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)\s')
EPOCH_PROGRESS = re.compile(rb'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')
ITER_PROGRESS = re.compile(rb'Iter\(train\)\s*\[\s*(\d+)/(\d+)\]')


class StageFailed(RuntimeError):
    """A stage's tool exited with an error (the message quotes its log)."""


def _print(text: str) -> None:
    print(text, flush=True)


def _tail(path: str, lines: int = 30) -> str:
    with open(path, 'rb') as handle:
        content = handle.read().decode(errors='replace').replace('\r', '\n')
    return '\n'.join(line for line in content.splitlines()[-lines:])


def run_command(ctx: PipelineContext, command: Command, log_path: str,
                resume: bool, verbose: bool = False) -> None:
    """Run one tool with a progress bar; raise :class:`StageFailed` on error."""
    from tqdm import tqdm
    args = list(command.args)
    if resume and command.total is not None and osp.isfile(
            osp.join(osp.dirname(log_path), 'last_checkpoint')):
        args.append('--resume')
    argv = ctx.argv(command.script, args, command.distributed, command.gpus)
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    with open(log_path, 'ab') as log:
        log.write(f'$ {ctx.display(argv)}\n'.encode())
        log.flush()
        bar = tqdm(total=command.total, desc=f'  {command.script}', leave=False,
                   unit=command.unit, dynamic_ncols=True, mininterval=0.5,
                   disable=None if not verbose else True)
        process = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=env, bufsize=0)
        pending = b''
        while True:
            chunk = process.stdout.read1(65536) if hasattr(
                process.stdout, 'read1') else process.stdout.read(4096)
            if not chunk:
                break
            log.write(chunk)
            log.flush()
            if verbose:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
            pending += chunk
            *lines, pending = re.split(rb'[\r\n]', pending)
            for line in lines:
                _update_bar(bar, line, command)
        code = process.wait()
        bar.close()
    if code != 0:
        raise StageFailed(f'{command.script} exited with code {code}; the last lines '
                          f'of {log_path}:\n{_tail(log_path)}')


def _update_bar(bar, line: bytes, command: Command) -> None:
    if command.total is not None:
        match = EPOCH_PROGRESS.search(line)
        if match:
            epoch, step, steps = (int(value) for value in match.groups())
            bar.n = round(epoch - 1 + step / max(steps, 1), 2)
            bar.refresh()
            return
        match = ITER_PROGRESS.search(line)
        if match:
            bar.n = int(match.group(1))
            bar.refresh()
        return
    match = TQDM_PROGRESS.search(line)
    if match:
        desc, done, total = match.groups()
        bar.total = int(total)
        bar.n = int(done)
        label = desc.decode(errors='replace').strip()
        if label:
            bar.set_description_str(f'  {label}', refresh=False)
        bar.refresh()


def _decide(stage: Stage, digest: str, content: dict) -> tuple:
    """(action, message lines): 'skip', 'resume', 'clean' or 'run'."""
    done, running = read_stamp(stage.dir, DONE), read_stamp(stage.dir, RUNNING)
    if done and done.get('digest') == digest:
        if stage.complete():
            return 'skip', []
        return 'resume', ['outputs incomplete (files removed?): completing them']
    if done:
        return 'clean', ['settings changed since the last run:'] + [
            '  ' + line for line in describe_changes(done, content)]
    if running and running.get('digest') == digest:
        return 'resume', ['resuming a run that was interrupted (same settings)']
    if running:
        return 'clean', ['an interrupted run used other settings:'] + [
            '  ' + line for line in describe_changes(running, content)]
    if has_outputs(stage.dir):
        return 'clean', ['outputs without a stamp (made by hand or an older version)']
    return 'run', []


def execute(ctx: PipelineContext, stage: Stage, digest: str, content: dict,
            label: str, verbose: bool = False) -> str:
    """Skip, resume or run one stage; returns what was done."""
    decision, messages = _decide(stage, digest, content)
    if decision != 'skip':
        messages = [f'note: {note}' for note in stage.notes] + messages
    if decision == 'skip':
        _print(f'{label} up to date (same settings), skipped')
        return 'skipped'
    for line in messages:
        _print(f'{label} {line}')
    if decision == 'clean':
        if stage.owns_dir:
            _print(f'{label} removing its stale outputs in {stage.dir} (the tools '
                   'would otherwise keep existing files)')
            clean(stage.dir)
        remove_stamp(stage.dir, DONE)
    os.makedirs(stage.dir, exist_ok=True)
    write_stamp(stage.dir, dict(content, digest=digest, started=time.time()),
                RUNNING)
    start, cpu_start = time.time(), _cpu_seconds()
    log_path = osp.join(stage.dir, 'stage.log')
    if stage.action is not None:
        stage.action()
    for command in stage.commands:
        if decision == 'resume' and command.done is not None and command.done():
            continue
        run_command(ctx, command, log_path, resume=decision == 'resume',
                    verbose=verbose)
    if not stage.complete():
        raise StageFailed(f'stage {stage.name} finished but its outputs are '
                          f'incomplete; see {log_path}')
    elapsed, cpu = time.time() - start, _cpu_seconds() - cpu_start
    write_stamp(stage.dir, dict(content, digest=digest, elapsed_s=round(elapsed, 1),
                                cpu_s=round(cpu, 1),
                                finished=time.strftime('%Y-%m-%d %H:%M:%S'),
                                outputs=stage.outputs))
    remove_stamp(stage.dir, RUNNING)
    _print(f'{label} done in {_duration(elapsed)} (CPU time {_duration(cpu)})')
    return 'ran'


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f'{seconds:.1f} s'
    return f'{int(seconds // 60)} min {seconds % 60:04.1f} s'


def dry_run_stage(ctx: PipelineContext, stage: Stage, digest: str,
                  label: str) -> List[str]:
    done = read_stamp(stage.dir, DONE)
    state = 'up to date, would be skipped' if done and done.get(
        'digest') == digest else ('would rerun: settings changed' if done
                                  else 'would run')
    _print(f'{label} {state}  [{stage.dir}]')
    for note in stage.notes:
        _print(f'    note: {note}')
    commands = []
    if stage.action is not None:
        _print(f'    (in-process: {stage.name})')
    if stage.outputs.get('external'):
        _print(f'    (external pseudo labels: {stage.outputs["labels"]})')
    for command in stage.commands:
        text = ctx.display(ctx.argv(command.script, command.args,
                                    command.distributed, command.gpus))
        commands.append(text)
        _print(f'    $ {text}')
    return commands


def run_pipeline(config: Union[str, Config, dict], work_dir: Optional[str] = None,
                 data_root: Optional[str] = None, from_stage: Optional[str] = None,
                 to_stage: Optional[str] = None, gpus: Optional[int] = None,
                 launcher: Optional[str] = None, cfg_options: Optional[dict] = None,
                 dry_run: bool = False, verbose: bool = False) -> Dict[str, Any]:
    """Run a pipeline config end to end (or from/to a stage), resumably.

    Args:
        config: a ``configs/pipelines/*.py`` path, a ``Config`` or a dict.
        work_dir, data_root: replace the config's.
        from_stage: earlier stages are not checked or run (their outputs must
            exist and are used as they are).
        to_stage: stop after this stage.
        gpus, launcher: every distributed tool runs on ``gpus`` processes under
            ``launcher`` (``none`` with more than one GPU means torchrun).
        cfg_options: overrides of the pipeline config (nested or dotted keys).
        dry_run: print every command with its resolved paths, run nothing.
        verbose: print the tools' output too.

    Returns:
        dict: the results (``results.json``'s content); for a dry run
        ``dict(dry_run=True, commands={stage: [command lines]})``.
    """
    cfg = load_pipeline_config(config, cfg_options)
    check_stage_name(from_stage, '--from')
    check_stage_name(to_stage, '--to')
    ctx = PipelineContext(cfg, work_dir, data_root, gpus, launcher)
    plans = plan_all(ctx)
    order = [name for name in STAGES if name in plans and name != 'results']
    first = STAGES.index(from_stage) if from_stage else 0
    last = STAGES.index(to_stage) if to_stage else len(STAGES) - 1
    if first > last:
        raise PipelineConfigError(f'--from {from_stage} comes after --to {to_stage}')
    _print(f'pipeline {ctx.filename or "<dict>"}: work dir {ctx.work_dir}, data '
           f'{ctx.data_root}, {ctx.gpus} GPU(s) / launcher {ctx.launcher}, seed '
           f'{ctx.seed}{" (dry run)" if dry_run else ""}')
    digests: Dict[str, Optional[str]] = {}
    finished = set()
    commands: Dict[str, List[str]] = {}
    total = len([name for name in order if first <= STAGES.index(name) <= last])
    count = 0
    for name in order:
        stage = plans[name]
        upstream = {up: digests.get(up) for up in stage.upstream if up in plans}
        content = dict(stage=name, settings=stage.settings, upstream=upstream)
        digest = settings_digest(stage.settings, upstream)
        position = STAGES.index(name)
        if position < first:
            done = read_stamp(stage.dir, DONE)
            if dry_run:
                digests[name] = (done or {}).get('digest', digest)
                continue
            if done is None or not stage.complete():
                raise PipelineConfigError(
                    f'--from {from_stage}: the earlier stage {name} has no complete '
                    f'outputs in {stage.dir}; run it first')
            if done.get('digest') != digest:
                _print(f'[ - ] {name:<14} settings changed since it ran; --from '
                       'keeps its outputs as they are')
            digests[name] = done['digest']
            finished.add(name)
            continue
        digests[name] = digest
        if position > last:
            done = read_stamp(stage.dir, DONE)
            if not dry_run and done and done.get('digest') == digest and \
                    stage.complete():
                finished.add(name)
            continue
        count += 1
        label = f'[{count:>2}/{total}] {name:<14}'
        if dry_run:
            commands[name] = dry_run_stage(ctx, stage, digest, label)
            continue
        execute(ctx, stage, digest, content, label, verbose)
        finished.add(name)
    if dry_run:
        _print(f'results: {osp.join(ctx.work_dir, "results.md")} and results.json')
        return dict(dry_run=True, commands=commands)
    return finish(ctx, plans, digests, finished, verbose)


def finish(ctx: PipelineContext, plans: Dict[str, Stage], digests: Dict[str, Any],
           finished: set, verbose: bool = False) -> Dict[str, Any]:
    """The results stage over the finished stages; print the table."""
    import json
    stage = plans['results']
    stage.action = _results_action(ctx, plans, finished)
    upstream = {name: digests.get(name) if name in finished else None
                for name in stage.upstream}
    content = dict(stage='results', settings=stage.settings, upstream=upstream)
    digest = settings_digest(stage.settings, upstream)
    execute(ctx, stage, digest, content, f'[ = ] {"results":<14}', verbose)
    with open(stage.outputs['json']) as handle:
        results = json.load(handle)
    with open(stage.outputs['markdown']) as handle:
        _print('\n' + handle.read())
    return results


def _results_action(ctx: PipelineContext, plans: Dict[str, Stage], finished: set):
    def action() -> None:
        from .results import write_results
        write_results(ctx, {name: plan for name, plan in plans.items()
                            if name in finished})
    return action
