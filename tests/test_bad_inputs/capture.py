"""Run the whole catalogue against a checkout and record what each case said.

    python -m tests.test_bad_inputs.capture --repo DIR --out before.json
        [--only TOOL:CASE ...]
    python -m tests.test_bad_inputs.capture --table before.json after.json
        [--issue N]

``--repo`` is the checkout whose ``tools/`` and ``configs/`` run (put its
``mars_mm`` first on ``PYTHONPATH`` to run its code, e.g. an exported older
commit). The record per case: exit status, message, whether the case's expected
status / message / outcome check hold. ``--only`` runs the named cases alone
and updates their records in ``--out`` if it exists. ``--table`` renders two
records as the before/after table of ``docs/en/reliability.md``; ``--issue N``
keeps the cases that issue added (each issue has its own table, whose *before*
is the commit before that issue's fixes), numbered after those of the earlier
issues.
"""
import argparse
import importlib
import json
import os
import re
import sys
import tempfile
import time
import traceback

MODULES = ('test_train', 'test_test', 'test_generate_cams', 'test_own_data',
           'test_cam_labels', 'test_uss', 'test_debias', 'test_data_tools')


def key(case) -> str:
    """A case's id in the records: names repeat across tools."""
    return f'{case.tool}:{case.name}'


def all_cases():
    cases = []
    for name in MODULES:
        module = importlib.import_module(f'tests.test_bad_inputs.{name}')
        cases += module.CASES
    return cases


def capture(repo: str, out: str, only=None) -> None:
    from tests.test_bad_inputs.world import Sandbox, build_world
    root = tempfile.mkdtemp(prefix='bad_inputs_')
    world = build_world(f'{root}/world', repo)
    records = {}
    if only and os.path.isfile(out):
        with open(out) as handle:
            records = json.load(handle)
    for index, case in enumerate(all_cases()):
        if only and key(case) not in only:
            continue
        start = time.perf_counter()
        sandbox = Sandbox(world, f'{root}/case{index:03d}')
        try:
            result = case.run(sandbox)
        except Exception as err:  # the case's own preparation failed
            records[key(case)] = dict(tool=case.tool, rc=None, origin=case.origin,
                                      message=f'(case failed: {err!r})', ok=False)
            continue
        check = 'ok'
        if case.check is not None:
            try:
                case.check(sandbox, result)
            except Exception as err:  # noqa: BLE001
                check = f'{type(err).__name__}: {err}'.splitlines()[0][:300]
        ok = (result.rc == case.rc and bool(re.search(case.pattern, result.message,
                                                      re.S)) and check == 'ok')
        records[key(case)] = dict(
            tool=case.tool, origin=case.origin, what=case.what, rc=result.rc,
            message=result.message[:600], check=check, ok=ok,
            seconds=round(time.perf_counter() - start, 1))
        print(f'{case.tool:32s} {case.name:28s} rc={result.rc} ok={ok} '
              f'{result.message[:150]!r}', file=sys.stderr, flush=True)
    with open(out, 'w') as handle:
        json.dump(records, handle, indent=1)


#: The temporary folders of a capture, shortened in the table.
_CASE_DIR = re.compile(r'/\S*?/bad_inputs_[^/\s]+/case\d+/')
_WORLD_DIR = re.compile(r'/\S*?/bad_inputs_[^/\s]+/world/')


def _cell(text: str, limit: int = 260) -> str:
    text = ' '.join(str(text).split())
    text = _WORLD_DIR.sub('world/', _CASE_DIR.sub('', text))
    if len(text) > limit:
        text = text[:limit] + ' ...'
    return text.replace('|', '\\|')


def _outcome(record: dict) -> str:
    if record is None:
        return 'not run'
    message = _cell(record['message'])
    check = record.get('check', 'ok')
    if check != 'ok':
        message += f' **(outcome wrong: {_cell(check, 160)})**'
    return f'exit {record["rc"]}: {message}'


def table(before_path: str, after_path: str, issue=None) -> str:
    with open(before_path) as handle:
        before = json.load(handle)
    with open(after_path) as handle:
        after = json.load(handle)
    cases = all_cases()
    lines = ['| # | tool | case | issue | before | after |',
             '| --- | --- | --- | --- | --- | --- |']
    if issue is not None:  # numbered after the cases of the issues before it
        first = sum(case.issue < issue for case in cases)
        cases = [case for case in cases if case.issue == issue]
    else:
        first = 0
    for index, case in enumerate(cases, first + 1):
        lines.append(f'| {index} | `{case.tool}` | {_cell(case.what, 200)} | '
                     f'{case.origin} | {_outcome(before.get(key(case)))} | '
                     f'{_outcome(after.get(key(case)))} |')
    return '\n'.join(lines) + '\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repo', help='checkout whose tools and configs run')
    parser.add_argument('--out', help='JSON record to write')
    parser.add_argument('--table', nargs=2, metavar=('BEFORE', 'AFTER'))
    parser.add_argument('--issue', type=int,
                        help='with --table: only the cases this issue added')
    parser.add_argument('--only', nargs='+', metavar='TOOL:CASE',
                        help='run these cases alone (e.g. mars/debias.py:cfg-typo)')
    args = parser.parse_args()
    if args.table:
        print(table(*args.table, issue=args.issue), end='')
    else:
        try:
            capture(args.repo, args.out, args.only)
        except Exception:
            traceback.print_exc()
            raise


if __name__ == '__main__':
    main()
