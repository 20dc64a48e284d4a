"""Where mars_mm's configs and tools lie, in a clone or in an installed wheel.

A wheel carries them as OpenMMLab packages do (mmseg's ``.mim``): ``setup.py``
copies ``configs/``, ``tools/``, ``projects/`` and ``model-index.yml`` into
``mars_mm/.mim/`` when it builds a wheel, so that an installed mars_mm finds a
config by name without a clone (openmim's ``mim train mars_mm CONFIG`` looks in
the same folder). An editable install (``pip install -e .``, ``make install``) has
no ``.mim``: the clone itself holds them.
"""
import difflib
import os
import os.path as osp
from typing import List

#: The folder of an installed wheel that holds configs/ and tools/.
MIM_FOLDER = '.mim'
#: Folders of the package root whose ``*.py`` files are configs.
CONFIG_FOLDERS = ('configs', 'projects')
#: ``mars_mm::cam/cam_r50....py`` names a config of the installed package, as
#: ``mmseg::`` does in mmengine.
SCOPE = 'mars_mm::'


def package_root() -> str:
    """The folder holding ``configs/`` and ``tools/``: ``mars_mm/.mim`` of a wheel,
    else the clone around the imported ``mars_mm``.

    Raises:
        FileNotFoundError: neither exists (e.g. a wheel built without them).
    """
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    candidates = (osp.join(package, MIM_FOLDER), osp.dirname(package))
    for root in candidates:
        if osp.isdir(osp.join(root, 'configs')) and \
                osp.isfile(osp.join(root, 'tools', 'train.py')):
            return root
    raise FileNotFoundError(
        f'no configs/ and tools/ next to {package}: neither {candidates[0]} (an '
        f'installed wheel) nor {candidates[1]} (a clone) holds them')


def list_configs(root: str = None) -> List[str]:
    """Every config file under the package root, relative to it, sorted."""
    root = root or package_root()
    found = []
    for folder in CONFIG_FOLDERS:
        for dirpath, _, names in os.walk(osp.join(root, folder)):
            found += [osp.relpath(osp.join(dirpath, name), root) for name in names
                      if name.endswith('.py')]
    return sorted(found)


def find_config(name: str) -> str:
    """A config path from a path, a package-relative path or a file name.

    Tried in order: ``name`` as a path (relative to the working directory);
    ``mars_mm::<path under configs/>``; ``<root>/<name>`` and
    ``<root>/configs/<name>`` (e.g. ``configs/mars/x.py`` or ``mars/x.py``); a file
    name (with or without ``.py``) that exactly one config of the package has.

    Raises:
        FileNotFoundError: nothing matches, naming the closest config names; or
            the file name is not unique, naming every match.
    """
    if osp.isfile(name):
        return name
    root = package_root()
    relative = name[len(SCOPE):] if name.startswith(SCOPE) else name
    if not relative.endswith('.py'):
        relative += '.py'
    for path in (osp.join(root, relative), osp.join(root, 'configs', relative)):
        if osp.isfile(path):
            return path
    configs = list_configs(root)
    matches = [path for path in configs if osp.basename(path) ==
               osp.basename(relative)]
    if len(matches) == 1:
        return osp.join(root, matches[0])
    if matches:
        raise FileNotFoundError(f'config {name!r}: {len(matches)} configs of '
                                f'{root} have that name: {matches}; give its '
                                'folder too')
    names = [osp.basename(path)[:-3] for path in configs]
    close = difflib.get_close_matches(osp.basename(relative)[:-3], names, n=5)
    hint = f'; closest: {close}' if close else ''
    raise FileNotFoundError(f'config {name!r} is neither a file nor a config of '
                            f'{root}{hint} (`mars-mm configs` lists them)')


def find_tool(name: str) -> str:
    """``tools/<name>`` (``.py`` added when missing) of the package root.

    Raises:
        FileNotFoundError: naming the tools that exist.
    """
    root = package_root()
    relative = name if name.endswith(('.py', '.sh')) else name + '.py'
    path = osp.join(root, 'tools', relative)
    if osp.isfile(path):
        return path
    tools = sorted(osp.relpath(osp.join(dirpath, entry), osp.join(root, 'tools'))
                   for dirpath, _, entries in os.walk(osp.join(root, 'tools'))
                   for entry in entries if entry.endswith('.py'))
    raise FileNotFoundError(f'no tool {name!r} in {root}/tools; tools: {tools}')
