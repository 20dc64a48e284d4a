"""The pipeline driver without running tools: configs, commands, dry runs, stamps."""
import json
import os
import os.path as osp
import sys

import pytest
from mmengine.config import Config, DictAction

from mars_mm.apis.pipeline import (
    PipelineConfigError,
    load_pipeline_config,
    run_pipeline,
)
from mars_mm.apis.pipeline.context import (
    PipelineContext,
    flatten,
    format_value,
    option_args,
    repository_root,
    schedule_options,
)
from mars_mm.apis.pipeline.runner import execute
from mars_mm.apis.pipeline.stages import Stage
from mars_mm.apis.pipeline.stamps import (
    DONE,
    RUNNING,
    describe_changes,
    read_stamp,
    settings_digest,
    write_stamp,
)

PIPELINES = ['configs/pipelines/voc12aug.py', 'configs/pipelines/coco2014.py',
             'configs/pipelines/rsepm_voc12aug.py', 'configs/pipelines/planted.py',
             'configs/pipelines/planted_demo.py', 'configs/pipelines/own_data.py']


@pytest.fixture(autouse=True)
def _at_repo_root(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # configs are named relative to the repository


def _dry_run(path, capsys, **kwargs):
    result = run_pipeline(path, dry_run=True, **kwargs)
    return result['commands'], capsys.readouterr().out


def _option(command, key):
    """The value of ``key=...`` in a printed command line."""
    for token in command.split():
        if token.startswith(key + '='):
            return token.split('=', 1)[1]
    raise AssertionError(f'{key} not in {command}')


@pytest.mark.parametrize('path', PIPELINES)
def test_shipped_pipelines_load(path):
    cfg = load_pipeline_config(path)
    assert cfg.work_dir.startswith('work_dirs/')


def test_voc_pipeline_dry_run_wires_every_stage(capsys, tmp_path):
    work = str(tmp_path / 'voc')
    # the two-job Stage 1 (the fused job: test_pipeline_compact.py)
    commands, out = _dry_run('configs/pipelines/voc12aug.py', capsys, work_dir=work,
                             cfg_options={'pseudo_labels.fused': False})
    assert list(commands) == ['dataset', 'cam_train', 'cams', 'pseudo_labels',
                              'uss_train', 'embeddings', 'debias', 'seg_baseline',
                              'seg_mars', 'test']
    # CAM training keeps its 1xb16 recipe; the offline stages use the 4 GPUs
    assert commands['cam_train'][0].startswith('python tools/train.py')
    assert '--nproc_per_node=4' in commands['cams'][0]
    assert commands['cams'][0].endswith('--launcher pytorch')
    # each stage reads the previous one's outputs
    assert f'{work}/cam_train/epoch_5.pth' in commands['cams'][0]
    assert commands['pseudo_labels'][0].startswith(
        f'python tools/cam/make_pseudo_labels.py {work}/cams ')
    assert _option(commands['uss_train'][1],
                   'train_dataloader.dataset.knn_file') == f'{work}/uss_train/knn.npz'
    assert f'{work}/uss_train/iter_5000.pth' in commands['embeddings'][0]
    debias = commands['debias'][0]
    assert _option(debias, 'debias.pseudo_label_dir') == f'{work}/pseudo_labels'
    assert _option(debias, 'debias.embedding_dir') == f'{work}/embeddings'
    assert _option(commands['seg_baseline'][0],
                   'train_dataloader.dataset.pseudo_label_dir') == \
        f'{work}/pseudo_labels'
    assert _option(commands['seg_mars'][0],
                   'train_dataloader.dataset.pseudo_label_dir') == \
        f'{work}/debias/labels'
    # every command is pointed at the pipeline's data root
    for stage, lines in commands.items():
        for line in lines:
            assert '--data-root data/VOCdevkit/VOC2012' in line, (stage, line)
    # three test settings per model: single scale, tta without CRF, tta with CRF
    tests = commands['test']
    assert len(tests) == 6
    assert f'{work}/seg_mars/iter_40000.pth' in tests[3]
    assert '--tta' not in tests[0] and 'tta_model.crf=None' in tests[1]
    assert '--tta' in tests[2] and 'tta_model.crf' not in tests[2]
    assert 'would run' in out and 'oracle' not in commands  # no PlantedContext


def test_coco_pipeline_dry_run_on_8_gpus(capsys, tmp_path):
    commands, _ = _dry_run('configs/pipelines/coco2014.py', capsys,
                           work_dir=str(tmp_path / 'coco'))
    assert '--nproc_per_node=8' in commands['debias'][0]
    assert '--nproc_per_node=4' in commands['seg_mars'][0]  # its 4xb4 recipe
    assert 'iter_80000.pth' in commands['test'][0]


def test_external_labels_skip_the_cam_stages(capsys, tmp_path):
    work = str(tmp_path / 'ext')
    commands, out = _dry_run('configs/pipelines/rsepm_voc12aug.py', capsys,
                             work_dir=work,
                             cfg_options={'pseudo_labels.external': 'data/ext'})
    assert 'cam_train' not in commands and 'cams' not in commands
    assert commands['pseudo_labels'] == []
    assert '(external pseudo labels: data/ext)' in out
    assert _option(commands['debias'][0], 'debias.pseudo_label_dir') == 'data/ext'
    assert _option(commands['seg_baseline'][0],
                   'train_dataloader.dataset.pseudo_label_dir') == 'data/ext'


def test_slurm_commands_mirror_the_launch_script(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv('PARTITION', 'gpu')
    monkeypatch.setenv('GPUS_PER_NODE', '4')
    commands, _ = _dry_run('configs/pipelines/voc12aug.py', capsys,
                           work_dir=str(tmp_path / 'w'), launcher='slurm',
                           cfg_options={'pseudo_labels.fused': False})
    cams = commands['cams'][0]
    assert cams.startswith('srun -p gpu --job-name=mars_mm --gres=gpu:4 --ntasks=4 '
                           '--ntasks-per-node=4 --cpus-per-task=5 '
                           '--kill-on-bad-exit=1 python -u tools/cam/generate_cams.py')
    assert cams.endswith('--launcher=slurm')
    # a one-process tool also runs on the cluster, without a launcher
    labels = commands['pseudo_labels'][0]
    assert labels.startswith('srun') and '--ntasks=1' in labels
    assert '--launcher' not in labels


def test_from_and_to_select_stages(capsys, tmp_path):
    commands, _ = _dry_run('configs/pipelines/planted_demo.py', capsys,
                           work_dir=str(tmp_path / 'w'), from_stage='embeddings',
                           to_stage='oracle')
    assert list(commands) == ['embeddings', 'debias', 'oracle']
    with pytest.raises(PipelineConfigError, match='comes after'):
        run_pipeline('configs/pipelines/planted_demo.py', from_stage='test',
                     to_stage='cams', dry_run=True)
    with pytest.raises(PipelineConfigError, match='choose one of'):
        run_pipeline('configs/pipelines/planted_demo.py', to_stage='nope',
                     dry_run=True)


def test_planted_pipeline_sets_class_counts_from_the_preset(capsys, tmp_path):
    commands, _ = _dry_run(
        'configs/pipelines/planted_demo.py', capsys, work_dir=str(tmp_path / 'w'),
        cfg_options={'dataset.generate.preset': 'many-classes'})
    assert _option(commands['cam_train'][0], 'model.head.num_classes') == '12'
    assert _option(commands['seg_mars'][0], 'model.decode_head.num_classes') == '13'
    # the schedule is cut consistently: iterations, LR schedule end, checkpoint
    # (the demo's own length, so resizing the demo does not break this test)
    iters = str(load_pipeline_config('configs/pipelines/planted_demo.py')
                .seg_baseline.schedule.max_iters)
    seg = commands['seg_baseline'][0]
    assert _option(seg, 'train_cfg.max_iters') == iters
    assert _option(seg, 'param_scheduler.0.end') == iters


def test_pipeline_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_pipeline_config(str(tmp_path / 'missing.py'))
    base = Config.fromfile('configs/pipelines/planted.py').to_dict()
    with pytest.raises(PipelineConfigError, match='unknown pipeline keys'):
        load_pipeline_config(dict(base, debais=dict()))
    with pytest.raises(PipelineConfigError, match='unknown keys .* in `debias`'):
        load_pipeline_config(dict(base, debias=dict(config='x.py', alpah=1)))
    broken = dict(base)
    broken.pop('embeddings')
    with pytest.raises(PipelineConfigError, match='embeddings.config'):
        load_pipeline_config(broken)
    with pytest.raises(PipelineConfigError, match='test modes'):
        load_pipeline_config(dict(base, test=dict(modes=['ss', 'multi'])))


def test_option_values_survive_the_command_line():
    options = {'a': 1, 'b': 0.5, 'c': None, 'd': True, 'e': 'work_dirs/x',
               'f': [1, 2], 'g': (128, 128), 'h': (3, ), 'i': {'j': 'k'}}
    args = option_args(options)
    assert args[0] == '--cfg-options'
    parsed = {}
    for item in args[1:]:
        key, value = item.split('=', 1)
        parsed[key] = DictAction._parse_iterable(value)
    assert parsed == {'a': 1, 'b': 0.5, 'c': None, 'd': True, 'e': 'work_dirs/x',
                      'f': [1, 2], 'g': (128, 128), 'h': (3, ), 'i.j': 'k'}
    for bad in ('has space', 'a,b', ''):
        with pytest.raises(PipelineConfigError, match='cannot carry'):
            format_value(bad, 'key')
    assert flatten({'a': {'b': [dict(c=1)]}}) == {'a.b.0.c': 1}
    assert flatten({}) == {}


def test_schedule_options_shorten_the_whole_schedule():
    cfg = Config.fromfile(
        'configs/mars/deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py')
    assert schedule_options(cfg, dict(max_iters=40)) == {
        'train_cfg.max_iters': 40, 'train_cfg.val_interval': 40,
        'default_hooks.checkpoint.interval': 40, 'param_scheduler.0.end': 40}
    with pytest.raises(PipelineConfigError, match='max_epochs'):
        schedule_options(cfg, dict(max_epochs=3))


def test_missing_tools_folder_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv('MARS_MM_ROOT', str(tmp_path))
    with pytest.raises(FileNotFoundError, match='tools/ has no train.py'):
        repository_root()


# --------------------------------------------------------------- stamps, runner
def _fake_stage(folder, settings, runs, files=('a.txt', 'b.txt')):
    def action():
        runs.append(dict(settings))
        for name in files:
            path = osp.join(folder, name)
            if not osp.isfile(path):
                with open(path, 'w') as handle:
                    handle.write(json.dumps(settings))

    def complete():
        return all(osp.isfile(osp.join(folder, name)) for name in files)
    return Stage('debias', folder, settings, {}, complete, action=action)


def _execute(stage, upstream=None):
    upstream = upstream or {}
    content = dict(stage=stage.name, settings=stage.settings, upstream=upstream)
    ctx = PipelineContext.__new__(PipelineContext)  # commands are not used
    return execute(ctx, stage, settings_digest(stage.settings, upstream), content,
                   '[x]')


def test_stage_is_skipped_only_with_the_same_settings(tmp_path, capsys):
    folder = str(tmp_path / 'stage')
    runs = []
    settings = dict(config={'debias.alpha': 0.4}, args=['x', '--k', '2'])
    assert _execute(_fake_stage(folder, settings, runs)) == 'ran'
    assert read_stamp(folder, DONE) and read_stamp(folder, RUNNING) is None
    assert _execute(_fake_stage(folder, settings, runs)) == 'skipped'
    assert 'skipped' in capsys.readouterr().out
    # a changed setting is named, old -> new, and stale outputs are removed
    changed = dict(settings, config={'debias.alpha': 0.5})
    assert _execute(_fake_stage(folder, changed, runs)) == 'ran'
    out = capsys.readouterr().out
    assert 'config.debias.alpha: 0.4 -> 0.5' in out
    assert 'removing its stale outputs' in out
    with open(osp.join(folder, 'a.txt')) as handle:
        assert json.load(handle)['config'] == {'debias.alpha': 0.5}
    # an upstream stage that reran changes the digest too
    assert _execute(_fake_stage(folder, changed, runs), dict(cams='x')) == 'ran'
    assert 'cams (upstream) was rerun or changed' in capsys.readouterr().out
    # outputs removed by hand: completed, not skipped
    os.remove(osp.join(folder, 'b.txt'))
    assert _execute(_fake_stage(folder, changed, runs), dict(cams='x')) == 'ran'
    assert 'outputs incomplete' in capsys.readouterr().out
    assert len(runs) == 4


def test_killed_run_is_resumed_or_cleaned(tmp_path, capsys):
    folder = str(tmp_path / 'stage')
    os.makedirs(folder)
    settings = dict(config={'debias.alpha': 0.4})
    digest = settings_digest(settings, {})
    # killed with the same settings: resume, keep the finished file
    write_stamp(folder, dict(settings=settings, upstream={}, digest=digest), RUNNING)
    with open(osp.join(folder, 'a.txt'), 'w') as handle:
        handle.write('"kept"')
    runs = []
    _execute(_fake_stage(folder, settings, runs))
    assert 'resuming a run that was interrupted' in capsys.readouterr().out
    with open(osp.join(folder, 'a.txt')) as handle:
        assert handle.read() == '"kept"'
    # killed, then the settings changed: the partial outputs are removed
    os.remove(osp.join(folder, DONE))
    old = dict(config={'debias.alpha': 0.3})
    write_stamp(folder, dict(settings=old, upstream={},
                             digest=settings_digest(old, {})), RUNNING)
    _execute(_fake_stage(folder, settings, runs))
    out = capsys.readouterr().out
    assert 'an interrupted run used other settings' in out
    assert 'config.debias.alpha: 0.3 -> 0.4' in out
    with open(osp.join(folder, 'a.txt')) as handle:
        assert handle.read() != '"kept"'
    # outputs without any stamp are not trusted
    other = str(tmp_path / 'other')
    os.makedirs(other)
    with open(osp.join(other, 'a.txt'), 'w') as handle:
        handle.write('"foreign"')
    _execute(_fake_stage(other, settings, runs))
    assert 'outputs without a stamp' in capsys.readouterr().out


def test_describe_changes_reads_command_lines():
    old = dict(settings=dict(args=['cams', '--bg-power', '2.0', '--crf']))
    new = dict(settings=dict(args=['cams', '--bg-power', '1.0', '--no-crf']))
    lines = describe_changes(old, new)
    assert 'args: --bg-power: 2.0 -> 1.0' in lines
    assert 'args: --crf: true -> <unset>' in lines


def test_run_pipeline_tool_parses_arguments(repo_root):
    sys.path.insert(0, osp.join(repo_root, 'tools', 'mars'))
    try:
        import run_pipeline as tool
    finally:
        sys.path.pop(0)
    args = tool.parse_args(['configs/pipelines/voc12aug.py', '--gpus', '2', '--from',
                            'debias', '--to', 'test', '--cfg-options', 'seed=3',
                            '--dry-run'])
    assert (args.gpus, args.from_stage, args.to_stage, args.cfg_options,
            args.dry_run) == (2, 'debias', 'test', {'seed': 3}, True)
