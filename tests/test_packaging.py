"""mars_mm as an installed package: configs found by name, the ``mars-mm`` command.

The fast tests run in the clone (an editable install: the clone is the package
root). The slow test is the OpenMMLab way end to end: it builds the wheel from the
working tree, installs it with ``--no-deps`` into a fresh virtual environment that
sees the test environment's dependencies through a ``.pth`` file (no second torch),
and from a folder outside the clone generates a dataset, trains and tests with
configs named by file name only.
"""
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from mars_mm.apis.cli import main as cli_main
from mars_mm.utils.package_files import (
    find_config,
    find_tool,
    list_configs,
    package_root,
)

SEG = 'deeplabv3plus_r18-d8_1xb8-500it_planted-128x128'


def test_package_root_of_a_clone_is_the_clone(repo_root):
    assert osp.samefile(package_root(), repo_root)


def test_find_config_by_path_folder_scope_and_name(repo_root, tmp_path,
                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the clone: names, not paths
    want = osp.join(repo_root, 'configs', 'mars', SEG + '.py')
    for name in (SEG, SEG + '.py', f'mars/{SEG}.py', f'configs/mars/{SEG}.py',
                 f'mars_mm::mars/{SEG}.py', want):
        assert osp.samefile(find_config(name), want), name
    project = 'debias-rsepm_voc12aug'
    assert find_config(project).endswith(
        osp.join('projects', 'external_pseudo_labels', 'configs', project + '.py'))
    with pytest.raises(FileNotFoundError, match='closest') as err:
        find_config('deeplabv3plus_r18-d8_1xb8-500it_planted-64x64')
    assert SEG in str(err.value)


def test_find_config_refuses_an_ambiguous_name(tmp_path, monkeypatch):
    for folder in ('configs/a', 'configs/b'):
        os.makedirs(tmp_path / folder)
        (tmp_path / folder / 'same.py').write_text('x = 1\n')
    os.makedirs(tmp_path / 'tools')
    (tmp_path / 'tools' / 'train.py').write_text('')
    monkeypatch.setattr('mars_mm.utils.package_files.package_root',
                        lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match='2 configs .* have that name'):
        find_config('same')
    assert osp.isfile(find_config('a/same.py'))


def test_every_config_has_a_unique_file_name():
    names = [osp.basename(path) for path in list_configs()]
    assert len(names) == len(set(names)), 'mim and find_config find configs by name'


def test_find_tool_and_cli(capsys, repo_root):
    assert find_tool('cam/generate_cams').endswith('tools/cam/generate_cams.py')
    with pytest.raises(FileNotFoundError, match='train.py'):
        find_tool('nope')
    cli_main(['configs', 'planted_demo'])
    assert capsys.readouterr().out.split() == ['configs/pipelines/planted_demo.py']
    cli_main(['root'])
    assert osp.samefile(capsys.readouterr().out.strip(), repo_root)
    with pytest.raises(SystemExit, match='unknown command'):
        cli_main(['trian'])
    with pytest.raises(SystemExit, match='give a CONFIG'):
        cli_main(['train', '--work-dir', 'x'])


def _tree_copy(repo_root: str, dest: str) -> None:
    """The working tree's files (tracked and new, not ignored), as a clone has."""
    listing = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard', '-z'],
                             cwd=repo_root, capture_output=True, check=True)
    for name in listing.stdout.decode().split('\0'):
        if name and osp.isfile(osp.join(repo_root, name)):
            os.makedirs(osp.dirname(osp.join(dest, name)), exist_ok=True)
            shutil.copy2(osp.join(repo_root, name), osp.join(dest, name))


@pytest.mark.slow
@pytest.mark.skipif(shutil.which('git') is None or not osp.exists(
    osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), '.git')),
    reason='lists the working tree with git')
def test_wheel_installs_and_runs_outside_the_clone(repo_root, tmp_path):
    source, dist = str(tmp_path / 'src'), str(tmp_path / 'dist')
    _tree_copy(repo_root, source)
    # ./ path and --no-index: pip must never mistake the folder for a PyPI name
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '--no-build-isolation', '--no-index', '-q', '-w', dist,
                    './src'], cwd=str(tmp_path), check=True)
    wheel = osp.join(dist, os.listdir(dist)[0])
    names = zipfile.ZipFile(wheel).namelist()
    assert f'mars_mm/.mim/configs/mars/{SEG}.py' in names
    for name in ('tools/train.py', 'tools/test.py', 'tools/dist_train.sh',
                 'model-index.yml', 'configs/cam/metafile.yaml',
                 'projects/external_pseudo_labels/configs/debias-rsepm_voc12aug.py'):
        assert f'mars_mm/.mim/{name}' in names, name
    assert {name.split('/')[0] for name in names} == {
        'mars_mm', osp.basename(wheel).split('-py3')[0] + '.dist-info'}
    assert not any('__pycache__' in name for name in names)
    assert any(line.strip() == 'mars-mm = mars_mm.apis.cli:main' for line in
               zipfile.ZipFile(wheel).read(
                   [n for n in names if n.endswith('entry_points.txt')][0])
               .decode().splitlines())

    venv = str(tmp_path / 'venv')
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', venv], check=True)
    python = osp.join(venv, 'bin', 'python')
    site = subprocess.run([python, '-c', 'import sysconfig; print(sysconfig.'
                           'get_paths()["purelib"])'], capture_output=True,
                          text=True, check=True).stdout.strip()
    with open(osp.join(site, '_mars_mm_test_deps.pth'), 'w') as handle:
        # torch & co. from the test environment, after the venv's own packages
        handle.write(sysconfig.get_paths()['purelib'] + '\n')
    subprocess.run([sys.executable, '-m', 'pip', '--python', python, 'install',
                    '--no-deps', '--no-index', '-q', wheel], check=True)

    work = str(tmp_path / 'elsewhere')
    os.makedirs(work)
    env = {key: value for key, value in os.environ.items()
           if key not in ('PYTHONPATH', 'MARS_MM_ROOT')}
    env.update(OMP_NUM_THREADS='1')
    command = osp.join(venv, 'bin', 'mars-mm')

    def run(*args):
        done = subprocess.run(args, cwd=work, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done

    where = run(python, '-c', 'import mars_mm; print(mars_mm.__file__)').stdout
    assert where.strip().startswith(site)
    assert run(command, 'root').stdout.strip() == osp.join(site, 'mars_mm', '.mim')
    run(command, 'run', 'dataset_converters/planted_bias.py', 'data/planted',
        '--num-train', '4', '--num-val', '2', '--image-size', '64', '64')
    short = ['train_cfg.max_iters=2', 'train_cfg.val_interval=2',
             'default_hooks.checkpoint.interval=2', 'train_dataloader.batch_size=2',
             'train_dataloader.dataset.pseudo_label_dir=data/planted/'
             'SegmentationClass']
    out = run(command, 'train', SEG, '--data-root', 'data/planted', '--work-dir',
              'work', '--cfg-options', *short).stderr
    assert f'config {osp.join(site, "mars_mm", ".mim", "configs", "mars", SEG)}.py' \
        in out
    assert osp.isfile(osp.join(work, 'work', 'iter_2.pth'))
    out = run(command, 'test', SEG, 'work/iter_2.pth', '--data-root',
              'data/planted', '--work-dir', 'work/test')
    assert 'mIoU' in out.stdout + out.stderr
    assert not osp.exists(osp.join(repo_root, 'work'))  # nothing in the clone
