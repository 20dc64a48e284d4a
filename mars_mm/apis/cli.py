"""``mars-mm``: the tools of an installed mars_mm, with configs found by name.

    mars-mm train CONFIG [train.py args]        tools/train.py
    mars-mm test CONFIG CKPT [test.py args]     tools/test.py
    mars-mm run TOOL [args]                     any tool, e.g. cam/generate_cams.py
    mars-mm configs [TEXT]                      the configs (whose path holds TEXT)
    mars-mm root                                the folder of configs/ and tools/

CONFIG is a path, or a config of the package by name
(``mars-deeplabv3plus_r18-d8_1xb8-500it_planted-128x128``), by path under
``configs/`` (``mars/...py``) or as ``mars_mm::mars/...py``
(:func:`mars_mm.utils.package_files.find_config`). ``run`` resolves every argument
ending in ``.py`` that is not a file the same way. The tool runs in this process
(``runpy``), so ``torchrun --nproc_per_node=N -m mars_mm.apis.cli train CONFIG
--launcher pytorch`` trains on N GPUs. The commands equal ``python
tools/<tool>.py ...`` in a clone; openmim's ``mim train mars_mm CONFIG`` runs the
same ``tools/train.py`` of the wheel.
"""
import os.path as osp
import runpy
import sys
from typing import List, Optional, Sequence

from mars_mm.utils.package_files import (
    find_config,
    find_tool,
    list_configs,
    package_root,
)

USAGE = __doc__.split('\n\n')[1]
COMMANDS = dict(train='train.py', test='test.py')


def _resolve_configs(args: Sequence[str]) -> List[str]:
    """Arguments with every not-existing ``*.py`` replaced by the config it names."""
    resolved = []
    for arg in args:
        if arg.endswith('.py') and not arg.startswith('-') and not osp.exists(arg):
            arg = find_config(arg)
        resolved.append(arg)
    return resolved


def run_tool(tool: str, args: Sequence[str]) -> None:
    """Run ``tools/<tool>`` as ``__main__`` with ``args`` as its command line."""
    path = find_tool(tool)
    if path.endswith('.sh'):
        raise SystemExit(f'{tool} is a shell script: run it as bash {path} ...')
    argv = sys.argv
    sys.argv = [path, *args]
    try:
        runpy.run_path(path, run_name='__main__')
    finally:
        sys.argv = argv


def main(argv: Optional[Sequence[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return
    command, rest = argv[0], argv[1:]
    if command in COMMANDS:
        if not rest or rest[0].startswith('-'):
            raise SystemExit(f'mars-mm {command}: give a CONFIG first\n{USAGE}')
        config = find_config(rest[0])
        print(f'mars-mm {command}: config {config}', file=sys.stderr)
        run_tool(COMMANDS[command], [config, *rest[1:]])
    elif command == 'run':
        if not rest:
            raise SystemExit(f'mars-mm run: give a TOOL\n{USAGE}')
        run_tool(rest[0], _resolve_configs(rest[1:]))
    elif command == 'configs':
        for path in list_configs():
            if not rest or rest[0] in path:
                print(path)
    elif command == 'root':
        print(package_root())
    else:
        raise SystemExit(f'mars-mm: unknown command {command!r}\n{USAGE}')


if __name__ == '__main__':
    main()
