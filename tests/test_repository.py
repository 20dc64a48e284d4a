"""Repository-wide rules: module size, and no paths of one machine in tracked files."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: A module longer than this is doing several things: split it.
MAX_MODULE_LINES = 450
#: An absolute path of one machine's file system (not a relative path such as
#: ``tests/data/`` and not inside a URL: the character before must not be a name's).
MACHINE_PATH = re.compile(r'(?<![\w.~:/-])/(?:work|home|Users|root|mnt|scratch)/')
#: Tracked files that may name such paths, and why.
MACHINE_PATH_ALLOWED = {
    'tests/test_repository.py': 'holds the pattern and its own test cases',
}


def tracked_files():
    if shutil.which('git') is None or not (ROOT / '.git').exists():
        pytest.skip('not a git checkout: the rule is about tracked files')
    out = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True,
                         check=True).stdout
    return [name for name in out.decode().split('\0') if name]


def test_no_module_of_the_package_is_longer_than_the_limit():
    too_long = {}
    for path in sorted((ROOT / 'mars_mm').rglob('*.py')):
        lines = len(path.read_text(encoding='utf-8').splitlines())
        if lines > MAX_MODULE_LINES:
            too_long[str(path.relative_to(ROOT))] = lines
    assert not too_long, f'split these modules (> {MAX_MODULE_LINES} lines): {too_long}'


def test_machine_path_pattern():
    for text in ('see /work/data/run/cam', "root='/home/me/voc'", ' /Users/x/',
                 'cd /root/x'):
        assert MACHINE_PATH.search(text), text
    for text in ('tests/data/configs', 'work_dirs/cam', 'https://example.org/home/',
                 'data/planted_bias', '~/work/x', './work/x'):
        assert not MACHINE_PATH.search(text), text


def test_no_tracked_file_names_a_machine_path():
    found = []
    for name in tracked_files():
        if name in MACHINE_PATH_ALLOWED or not (ROOT / name).is_file():
            continue
        try:
            text = (ROOT / name).read_text(encoding='utf-8')
        except UnicodeDecodeError:
            continue  # binary files (images) hold no paths to fix
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line):
                found.append(f'{name}:{number}: {line.strip()[:100]}')
    assert not found, ('absolute paths of one machine; use paths relative to the '
                       'repository (work_dirs/..., data/...):\n' + '\n'.join(found))
