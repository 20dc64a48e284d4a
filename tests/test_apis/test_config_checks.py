"""The --cfg-options check derives what is read from the registry and mmengine's
runners: every argument of every registered hook and loop is accepted, a typo of
one is refused; the runners' keys come from their signatures and code."""
import inspect

import pytest
from mmengine.config import Config
from mmengine.registry import HOOKS, LOOPS

import mars_mm  # noqa: F401  (registers mars_mm's hooks)
from mars_mm.apis.config_checks import check_cfg_options, runner_keys


def _registered(root):
    """``(scoped name, class)`` of every class in a registry and those below."""
    found, registries = [], [root]
    while registries:
        registry = registries.pop()
        registry.import_from_location()  # modules a registry imports lazily
        found += [(f'{registry.scope}.{name}', cls)
                  for name, cls in sorted(registry.module_dict.items())
                  if isinstance(cls, type)]
        registries += list(registry.children.values())
    return found


def _arguments(cls):
    """The class's own ``__init__`` arguments, read here with inspect."""
    return [name for name, param in inspect.signature(cls).parameters.items()
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)]


def _typo(name):
    """``name`` with two letters in its middle swapped (``max_epochs`` ->
    ``max_eopchs``), or None when that changes nothing."""
    middle = len(name) // 2
    typo = name[:middle - 1] + name[middle] + name[middle - 1] + name[middle + 1:]
    return typo if typo != name else None


CLASSES = [('default_hooks.probe', name, cls) for name, cls in _registered(HOOKS)] \
    + [('train_cfg', name, cls) for name, cls in _registered(LOOPS)]


def _config(where, type_name):
    section, _, key = where.partition('.')
    node = dict(type=type_name)
    return Config({section: {key: node} if key else node})


@pytest.mark.parametrize('where, type_name, cls', CLASSES,
                         ids=[name for _, name, _ in CLASSES])
def test_every_argument_of_a_registered_hook_or_loop_is_accepted(where, type_name,
                                                                 cls):
    cfg = _config(where, type_name)
    for argument in _arguments(cls):
        check_cfg_options(cfg, {f'{where}.{argument}': 1}, 'probe.py')


@pytest.mark.parametrize('where, type_name, cls', CLASSES,
                         ids=[name for _, name, _ in CLASSES])
def test_a_typo_of_an_argument_is_refused(where, type_name, cls):
    arguments = _arguments(cls)
    typos = [(argument, _typo(argument)) for argument in arguments
             if len(argument) >= 6 and _typo(argument) not in arguments + [None]]
    if not typos:
        pytest.skip(f'{type_name} has no argument of 6 letters or more')
    cfg = _config(where, type_name)
    for argument, typo in typos:
        with pytest.raises(ValueError, match=rf"has no key '{typo}'; did you mean "
                           rf".*{where}\.{argument}\b"):
            check_cfg_options(cfg, {f'{where}.{typo}': 1}, 'probe.py')


def test_runner_keys_are_mmengines():
    """Every argument of mmengine's Runner and FlexibleRunner is a key, and so
    are the keys mmengine's runner code reads from the config itself (looked
    up by hand in mmengine 0.10's runner.py / _flexible_runner.py); the
    config argument is none."""
    from mmengine.runner import FlexibleRunner, Runner
    keys = runner_keys()
    for cls in (Runner, FlexibleRunner):
        for argument in _arguments(cls):
            if argument != 'cfg':
                assert argument in keys, argument
                check_cfg_options(Config(), {argument: 1}, 'probe.py')
    for key in ('model_wrapper_cfg', 'find_unused_parameters', 'sync_bn',
                'activation_checkpointing', 'efficient_conv_bn_eval', 'compile',
                'init_weights_for_test_or_val'):
        assert key in keys, key
    assert 'cfg' not in keys
    with pytest.raises(ValueError, match="no key 'model_wraper_cfg'; did you mean "
                                         "model_wrapper_cfg"):
        check_cfg_options(Config(), {'model_wraper_cfg': 1}, 'probe.py')


def test_a_dataloader_without_type_is_read_as_a_dataloader(repo_root):
    """``train_dataloader`` has no ``type``: its keys are a torch DataLoader's
    (the runner argument's annotation), so a typo of one it does not set yet is
    refused and the real one passes."""
    path = f'{repo_root}/tests/data/configs/tiny_fcn_voc-32x32.py'
    cfg = Config.fromfile(path)
    assert 'persistent_workers' not in cfg.train_dataloader
    check_cfg_options(cfg, {'train_dataloader.persistent_workers': True}, path)
    check_cfg_options(cfg, {'train_dataloader.prefetch_factor': 2}, path)
    with pytest.raises(ValueError, match=r"did you mean "
                       r"train_dataloader\.persistent_workers"):
        check_cfg_options(cfg, {'train_dataloader.persistant_workers': True}, path)


def test_tool_sections_are_read_by_their_readers(repo_root):
    """``debias`` is read by DebiasSettings: every field passes, also one the
    base config leaves out (``embedding_suffix``, once refused as a typo of
    ``embedding_dir``), and a typo is refused; no special case does it."""
    import dataclasses

    from mars_mm.debias.settings import DebiasSettings
    path = f'{repo_root}/configs/mars/debias_planted.py'
    cfg = Config.fromfile(path)
    assert 'embedding_suffix' not in cfg.debias
    for field in dataclasses.fields(DebiasSettings):
        check_cfg_options(cfg, {f'debias.{field.name}': 1}, path)
    with pytest.raises(ValueError, match=r"did you mean debias\.alpha"):
        check_cfg_options(cfg, {'debias.alpah': 0.5}, path)
    with pytest.raises(ValueError, match=r"did you mean debias\.embedding_suffix"):
        check_cfg_options(cfg, {'debias.embedding_sufix': '.npz'}, path)
    # knn_cfg: the keys of the kNN defaults, though the config sets none
    path = f'{repo_root}/configs/uss/stego_vit-b8_1xb16-5k_voc12aug-224x224.py'
    cfg = Config.fromfile(path)
    check_cfg_options(cfg, {'knn_cfg': dict(centre=True)}, path)
    check_cfg_options(cfg, {'export.flip': False}, path)
