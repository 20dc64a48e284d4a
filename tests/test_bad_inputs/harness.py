"""Running a tool as a user would, in this process, and recording what it said.

Each catalogue case runs one script of ``tools/`` with ``runpy`` (the ``__main__``
block included) instead of a subprocess: the imports are paid once for the whole
catalogue. The exit status is the one Python would give the process: 0 when the
script returns, the code of ``SystemExit`` (``sys.exit('msg')`` and argparse
errors included), 1 for an uncaught exception. The *message* is what a user reads
first: the exception (type and text), else what the script wrote to stderr, else
the warnings it raised.
"""
import io
import os
import os.path as osp
import re
import runpy
import sys
import warnings
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence


@dataclass
class Result:
    """What one tool run did."""
    rc: int
    exception: Optional[BaseException]
    stdout: str
    stderr: str
    warnings: List[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        """The first thing a user reads: the error, else stderr, else warnings."""
        if self.exception is not None:
            return f'{type(self.exception).__name__}: {self.exception}'
        lines = [line for line in self.stderr.splitlines()
                 if line.strip() and not _is_noise(line)]
        if self.rc != 0 and lines:
            return lines[-1]
        if self.warnings:
            return ' | '.join(self.warnings)
        out = [line for line in self.stdout.splitlines() if line.strip()]
        return f'(exit {self.rc}) ' + (out[-1] if out else '')


_NOISE = ('MultiScaleDeformableAttention', 'warnings.warn(', 'it/s]', 's/it]')


def _is_noise(line: str) -> bool:
    return any(token in line for token in _NOISE)


def _relevant_warning(warning) -> bool:
    """A warning of the project (mars_mm or a tool), not of a dependency."""
    filename = str(warning.filename).replace(os.sep, '/')
    return '/mars_mm/' in filename or '/tools/' in filename


def run_tool(repo: str, script: str, argv: Sequence[str]) -> Result:
    """Run ``<repo>/tools/<script>`` with ``argv`` in this process."""
    path = osp.join(repo, 'tools', script)
    out, err = io.StringIO(), io.StringIO()
    rc, exception = 0, None
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    with warnings.catch_warnings(record=True) as caught, \
            redirect_stdout(out), redirect_stderr(err):
        warnings.simplefilter('always')
        sys.argv = [path, *map(str, argv)]
        try:
            runpy.run_path(path, run_name='__main__')
        except SystemExit as exit_:
            if exit_.code is None:
                rc = 0
            elif isinstance(exit_.code, int):
                rc = exit_.code
            else:  # sys.exit('message'): Python prints it and exits with 1
                rc = 1
                err.write(f'{exit_.code}\n')
        except Exception as error:  # noqa: BLE001 - an uncaught error is the result
            rc, exception = 1, error
        finally:
            sys.argv = saved_argv
            os.chdir(saved_cwd)
    return Result(rc, exception, out.getvalue(), err.getvalue(),
                  [str(w.message) for w in caught if _relevant_warning(w)])


@dataclass
class Case:
    """One bad input of the catalogue.

    Attributes:
        name: short id, unique in the catalogue.
        tool: the script under ``tools/``.
        origin: where the case comes from: ``'silent N'`` / ``'unclear'`` /
            ``'unsafe N'`` / ``'lost N'`` / ``'unclear N'`` (the issue's lists),
            ``'new silent'`` / ``'new unclear'`` (found while building the
            catalogue, not in the issue), ``'own'`` (a careful user's try that
            the issue lacked) or ``'handled'`` (clear before, kept).
        what: the bad input in words.
        run: ``run(sandbox) -> Result``: prepares the input in its own folder
            and runs the tool (maybe twice, e.g. for resume cases).
        rc: the exit status expected now.
        pattern: a regex the message must match (naming the file or option).
        check: optional ``check(sandbox, result)`` of the outcome (files written,
            nothing left behind, nothing overwritten).
        issue: the issue that added the case (its before/after table in
            ``docs/en/reliability.md``).
    """
    name: str
    tool: str
    origin: str
    what: str
    run: Callable
    rc: int
    pattern: str
    check: Optional[Callable] = None
    issue: int = 13

    def verify(self, sandbox, result: Result) -> None:
        """Assert the exit status, the message and the outcome."""
        detail = (f'{self.name}: exit {result.rc}, message: {result.message}\n'
                  f'--- stderr tail:\n{result.stderr[-2000:]}')
        assert result.rc == self.rc, detail
        assert re.search(self.pattern, result.message, re.S), detail
        if self.check is not None:
            self.check(sandbox, result)
