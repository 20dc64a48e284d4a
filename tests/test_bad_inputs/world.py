"""The planted set every catalogue case starts from, and a per-case sandbox.

:func:`build_world` writes, once, what a user of the CPU chain would have after
running it on a 24-image planted-bias dataset (16 train + 8 val, 32 x 32): tiny
versions of the real configs (each inherits the repository's config and only
shrinks it), a CAM classifier and a segmentor trained by ``tools/train.py`` for a
couple of iterations, CAMs, pseudo labels and colour/texture embeddings made by the
tools. Cases never modify it: :class:`Sandbox` copies what a case breaks.
"""
import os
import os.path as osp
import shutil
from typing import Optional

from tests.test_bad_inputs.harness import Result, run_tool

CAM_CONFIG = """
_base_ = ['{repo}/configs/cam/cam_plain7-d8_1xb16-30e_planted-128x128.py']
data_root = '{data}'
model = dict(data_preprocessor=dict(size=(32, 32)),
             backbone=dict(widths=(8, 8, 8, 8, 8, 8, 8)), head=dict(in_channels=8))
cls_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadImageTags'),
    dict(type='RandomRescale', ratio_range=(0.75, 1.5)),
    dict(type='RandomCrop', crop_size=(32, 32)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs')]
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pipeline=cls_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_infer_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root))
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=1,
                        by_epoch=True, convert_to_iter_based=True)]
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""

SEG_CONFIG = """
_base_ = ['{repo}/configs/mars/deeplabv3plus_r18-d8_1xb8-500it_planted-128x128.py']
data_root = '{data}'
crop = (32, 32)
model = dict(
    data_preprocessor=dict(size=crop),
    backbone=dict(stem_channels=8, base_channels=8),
    decode_head=dict(in_channels=64, c1_in_channels=8, channels=16, c1_channels=8),
    auxiliary_head=dict(in_channels=32, channels=8))
seg_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabel'),
    dict(type='LoadImageTags'),
    dict(type='RandomCrop', crop_size=crop),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackWSSSInputs')]
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root, pseudo_label_dir='{pseudo}',
                                     pipeline=seg_train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_infer_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root))
param_scheduler = [dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=2,
                        by_epoch=False)]
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(checkpoint=dict(interval=2), logger=dict(interval=1))
"""

USS_CONFIG = """
_base_ = ['{repo}/configs/uss/colourtexture-d8_planted.py']
data_root = '{data}'
train_dataloader = dict(num_workers=0, persistent_workers=False,
                        dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_infer_dataloader = dict(num_workers=0, persistent_workers=False,
                              dataset=dict(data_root=data_root))
"""

DEBIAS_CONFIG = """
_base_ = ['{repo}/configs/mars/debias_planted.py']
data_root = '{data}'
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_infer_dataloader = dict(dataset=dict(data_root=data_root))
debias = dict(pseudo_label_dir='{pseudo}', embedding_dir='{emb}', num_workers=0,
              report=dict(enabled=False))
"""

CONFIGS = dict(cam=CAM_CONFIG, seg=SEG_CONFIG, uss=USS_CONFIG, debias=DEBIAS_CONFIG)


def _must(result: Result, what: str) -> Result:
    if result.rc != 0:
        raise RuntimeError(f'building the catalogue world failed at {what}: '
                           f'{result.message}\n{result.stderr[-3000:]}')
    return result


class World:
    """Paths of the shared, read-only inputs."""

    def __init__(self, root: str, repo: str) -> None:
        self.root, self.repo = root, repo
        self.data = osp.join(root, 'data')
        self.cams = osp.join(root, 'cams')
        self.pseudo = osp.join(root, 'pseudo')
        self.emb = osp.join(root, 'emb')
        self.cam_ckpt = osp.join(root, 'work', 'cam', 'epoch_1.pth')
        self.seg_ckpt = osp.join(root, 'work', 'seg', 'iter_2.pth')

    def config(self, name: str) -> str:
        return osp.join(self.root, 'configs', f'{name}.py')

    def write_config(self, path: str, name: str, **paths: str) -> str:
        values = dict(repo=self.repo, data=self.data, pseudo=self.pseudo,
                      emb=self.emb)
        values.update(paths)
        os.makedirs(osp.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(CONFIGS[name].format(**values))
        return path

    def train_stems(self):
        with open(osp.join(self.data, 'ImageSets', 'Segmentation', 'train.txt')) as f:
            return f.read().split()

    def val_stems(self):
        with open(osp.join(self.data, 'ImageSets', 'Segmentation', 'val.txt')) as f:
            return f.read().split()


def build_world(root: str, repo: str) -> World:
    """Write the world under ``root`` with the tools and configs of ``repo``."""
    from mars_mm.datasets.generators.planted_bias import generate_planted_bias
    world = World(root, repo)
    generate_planted_bias(world.data, num_train=16, num_val=8, image_size=(32, 32))
    for name in CONFIGS:
        world.write_config(world.config(name), name)
    _must(run_tool(repo, 'train.py', [world.config('cam'), '--work-dir',
                                      osp.join(root, 'work', 'cam')]), 'CAM training')
    _must(run_tool(repo, 'cam/generate_cams.py', [
        world.config('cam'), world.cam_ckpt, '--out', world.cams, '--device', 'cpu',
        '--scales', '1.0']), 'CAM export')
    _must(run_tool(repo, 'cam/make_pseudo_labels.py', [
        world.cams, '--dataset', world.config('cam'), '--out', world.pseudo,
        '--no-crf']), 'pseudo labels')
    _must(run_tool(repo, 'uss/extract_features.py', [
        world.config('uss'), '--out', world.emb, '--device', 'cpu']), 'embeddings')
    _must(run_tool(repo, 'train.py', [world.config('seg'), '--work-dir',
                                      osp.join(root, 'work', 'seg')]),
          'segmentation training')
    return world


class Sandbox:
    """One case's own folder, with copies of what it breaks."""

    def __init__(self, world: World, folder: str) -> None:
        self.world = world
        self.dir = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, *parts: str) -> str:
        return osp.join(self.dir, *parts)

    def copy(self, source: str, name: Optional[str] = None) -> str:
        """A copy of a world folder or file in the sandbox."""
        target = self.path(name or osp.basename(source.rstrip('/')))
        if osp.isdir(source):
            shutil.copytree(source, target)
        else:
            os.makedirs(osp.dirname(target), exist_ok=True)
            shutil.copy2(source, target)
        return target

    def config(self, name: str, extra: str = '', **paths: str) -> str:
        """A config of the world's kind ``name`` in the sandbox (other data /
        labels / embeddings through ``paths``), with ``extra`` lines appended."""
        path = self.world.write_config(self.path('configs', f'{name}.py'), name,
                                       **paths)
        if extra:
            with open(path, 'a') as handle:
                handle.write('\n' + extra + '\n')
        return path

    def tool(self, script: str, *argv) -> Result:
        return run_tool(self.world.repo, script, list(argv))
