"""No module under ``mars_mm/`` imports from a layer above its own.

Layers, lowest first; a module may import its own layer and the layers below:

0. ``utils``, ``version``: helpers that need nothing else of mars_mm.
1. ``core``: pure algorithms on arrays (no registry, no runner, no files).
2. ``debias``: Stage 3 as an offline job over files (settings, passes, file formats,
   rank synchronisation, report, analysis) on top of ``core``; ``registry``: mmseg's
   registries, re-exported.
3. ``datasets``: registered datasets and transforms (``DebiasPseudoLabel`` reads
   Stage 3's files through ``debias.formats``).
4. ``models``, ``evaluation``, ``engine``: registered modules (models use keys that
   datasets define).
5. ``apis``: the stage entry points the tools call.
6. ``mars_mm`` itself: its ``__init__.py`` imports the subpackages that register
   modules.

Every import counts, also one inside a function (a lazy import hides a dependency, it
does not remove it); relative imports are resolved. A new subpackage must be given a
layer here before it can be imported.
"""
import ast
from pathlib import Path
from typing import Iterator, Tuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'mars_mm'
LAYERS = {
    'utils': 0, 'version': 0,
    'core': 1,
    'debias': 2, 'registry': 2,
    'datasets': 3,
    'models': 4, 'evaluation': 4, 'engine': 4,
    'apis': 5,
    '': 6,  # mars_mm/__init__.py
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def imported_modules(source: str, module: str,
                     is_package: bool) -> Iterator[Tuple[int, str]]:
    """(line, absolute module) of every import in ``source``, nested ones included.

    ``from pkg import name`` yields ``pkg.name`` (``name`` may be a submodule, and
    ``from mars_mm import debias`` must count as importing ``mars_mm.debias``).
    """
    package = module if is_package else module.rpartition('.')[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                target = '.'.join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                yield node.lineno, f'{target}.{alias.name}'


def layer_of(module: str) -> int:
    """Layer of a ``mars_mm`` module (by its first component below ``mars_mm``)."""
    parts = module.split('.')
    return LAYERS[parts[1] if len(parts) > 1 else '']


def upward_imports(source: str, module: str, is_package: bool = False) -> list:
    """Messages for the imports of ``source`` (module ``module``) that go up."""
    own = layer_of(module)
    found = []
    for line, target in sorted(imported_modules(source, module, is_package)):
        if target.split('.')[0] != 'mars_mm':
            continue
        if target.count('.') >= 1 and target.split('.')[1] not in LAYERS:
            # ``from mars_mm.x import name``: name is no subpackage, judge ``x``
            target = 'mars_mm'
        if layer_of(target) > own:
            found.append(f'{module}:{line} imports {target} (layer '
                         f'{layer_of(target)} above {own})')
    return found


def test_every_subpackage_has_a_layer():
    names = {path.stem if path.is_file() else path.name
             for path in PACKAGE.iterdir()
             if (path.suffix == '.py' and path.stem != '__init__')
             or (path / '__init__.py').is_file()}
    assert names <= set(LAYERS), f'give these a layer: {sorted(names - set(LAYERS))}'


def test_no_module_imports_from_a_layer_above():
    violations = []
    for path in sorted(PACKAGE.rglob('*.py')):
        violations += upward_imports(path.read_text(), module_name(path),
                                     path.name == '__init__.py')
    assert not violations, '\n'.join(violations)


def test_the_check_sees_lazy_relative_and_from_package_imports():
    source = '\n'.join([
        'from mars_mm.utils.io import save_label_png',  # below: fine
        'def f():',
        '    from mars_mm.apis.debias import load_embedding',  # lazy, upward
        'from ...apis import cam',  # relative, upward
        'from mars_mm import datasets',  # a subpackage named in ``from mars_mm``
        'import mars_mm.debias.formats',  # same layer: fine
    ])
    found = upward_imports(source, 'mars_mm.debias.x.y')
    assert [text.split(' imports ')[1].split(' ')[0] for text in found] == [
        'mars_mm.apis.debias.load_embedding', 'mars_mm.apis.cam',
        'mars_mm.datasets']
