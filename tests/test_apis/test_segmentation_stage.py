"""Stage 4 end to end on a tiny VOC fixture: train MARS from the real VOC config,
then the checkpoint in mmseg's own APIs (plain DeepLabV3+ config), resume, TTA + CRF
testing and the VOC test-server export."""
import copy
import os.path as osp
import tarfile

import mmseg
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from PIL import Image

from mars_mm.utils.io import load_label_png, save_label_png
from tests.fixtures import make_tiny_voc

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
MARS_CONFIG = osp.join(
    REPO, 'configs/mars/mars-deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py')
# mmseg's own DeepLabV3+ VOC config, untouched except for the tiny sizes below
PLAIN_CONFIG = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', 'deeplabv3plus',
                        'deeplabv3plus_r101-d8_4xb4-40k_voc12aug-512x512.py')
BN = dict(type='BN', requires_grad=True)
TINY_MODEL = dict(
    pretrained=None,
    data_preprocessor=dict(size=(32, 32)),
    backbone=dict(depth=18, stem_channels=8, base_channels=8, norm_cfg=BN),
    decode_head=dict(in_channels=64, c1_in_channels=8, channels=16, c1_channels=8,
                     dilations=(1, 2, 3, 4), norm_cfg=BN),
    auxiliary_head=dict(in_channels=32, channels=8, norm_cfg=BN))
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(32, 32), keep_ratio=True),
    dict(type='LoadCheckedAnnotations'),
    dict(type='LoadImageTags'),
    dict(type='PackWSSSInputs'),
]


def tiny_cfg(path, root, work_dir, label_dir=None, data=True):
    cfg = Config.fromfile(path)
    cfg.merge_from_dict(dict(model=TINY_MODEL))
    cfg.work_dir = work_dir
    if not data:  # inference only: keep the config's own pipelines
        return cfg
    loader = dict(num_workers=0, persistent_workers=False)
    if label_dir is not None:
        cfg.train_dataloader.update(batch_size=2, **loader)
        cfg.train_dataloader.dataset.update(
            data_root=root, ann_file='ImageSets/Segmentation/train.txt',
            data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
            pseudo_label_dir=label_dir,  # the one key a config changes
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadPseudoLabel'),
                dict(type='LoadImageTags'),
                dict(type='RandomCrop', crop_size=(32, 32)),
                dict(type='PackWSSSInputs')])
    cfg.val_dataloader.update(**loader)
    cfg.val_dataloader.dataset.update(data_root=root, pipeline=TEST_PIPELINE)
    cfg.test_dataloader = copy.deepcopy(cfg.val_dataloader)
    if 'test_server_dataloader' in cfg:
        cfg.test_server_dataloader.update(**loader)
        cfg.test_server_dataloader.dataset.update(
            data_root=root, pipeline=[dict(type='LoadImageFromFile'),
                                      dict(type='Resize', scale=(32, 32),
                                           keep_ratio=True),
                                      dict(type='PackWSSSInputs')])
    if 'tta_pipeline' in cfg:  # small scales for a fast test
        cfg.tta_pipeline[1]['transforms'][0] = [
            dict(type='Resize', scale_factor=r, keep_ratio=True) for r in (1.0, 0.5)]
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3, val_interval=3)
    cfg.param_scheduler = [dict(type='PolyLR', power=0.9, begin=0, end=3,
                                by_epoch=False)]
    cfg.default_hooks.checkpoint.update(interval=3)
    cfg.default_hooks.logger.update(interval=1)
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('voc'))
    stems = make_tiny_voc(root, num_train=4, num_val=2, size=32)
    # debiased labels: a block of each object removed (254)
    label_dir = osp.join(root, 'debiased')
    for stem in stems[:4]:
        label = load_label_png(osp.join(root, 'SegmentationClass', f'{stem}.png'))
        rows, cols = np.nonzero((label > 0) & (label < 255))
        label[rows[: len(rows) // 2], cols[: len(cols) // 2]] = 254
        save_label_png(osp.join(label_dir, f'{stem}.png'), label)
    # test split: the val images plus one non-square image, no masks
    Image.fromarray(np.random.default_rng(0).integers(
        0, 255, (28, 41, 3)).astype(np.uint8)).save(
            osp.join(root, 'JPEGImages', 'test_odd.jpg'))
    with open(osp.join(root, 'ImageSets', 'Segmentation', 'test.txt'), 'w') as f:
        f.write('\n'.join(stems[4:] + ['test_odd']) + '\n')
    work_dir = str(tmp_path_factory.mktemp('work'))
    init_default_scope('mmseg')
    torch.manual_seed(0)
    runner = Runner.from_cfg(tiny_cfg(MARS_CONFIG, root, work_dir, label_dir))
    runner.train()
    return dict(root=root, work_dir=work_dir, label_dir=label_dir,
                checkpoint=osp.join(work_dir, 'iter_3.pth'),
                student=copy.deepcopy(runner.model.state_dict()),
                teacher=copy.deepcopy(teacher_hook(runner).teacher.state_dict()),
                stems=stems)


def teacher_hook(runner):
    return next(hook for hook in runner.hooks
                if type(hook).__name__ == 'EMATeacherHook')


def test_checkpoint_holds_only_the_student(trained):
    checkpoint = torch.load(trained['checkpoint'], map_location='cpu')
    assert not any('teacher' in key for key in checkpoint['state_dict'])
    assert set(checkpoint['state_dict']) == set(trained['student'])
    # the initial copy of the student + one EMA step after each of the 3 iterations
    assert int(checkpoint['mars_teacher']['steps']) == 4
    for key, value in trained['teacher'].items():
        torch.testing.assert_close(checkpoint['mars_teacher'][key], value.cpu())


def test_loads_into_plain_deeplabv3plus_with_mmseg_apis(trained, tmp_path):
    from mmseg.apis import MMSegInferencer, inference_model, init_model
    cfg = tiny_cfg(PLAIN_CONFIG, trained['root'], str(tmp_path), data=False)
    assert cfg.model.type == 'EncoderDecoder'
    model = init_model(cfg, trained['checkpoint'], device='cpu')
    assert type(model).__name__ == 'EncoderDecoder'
    loaded = model.state_dict()
    assert set(loaded) == set(trained['student'])
    # no missing or unexpected key: the checkpoint loads strictly
    model.load_state_dict(torch.load(trained['checkpoint'],
                                     map_location='cpu')['state_dict'], strict=True)
    for key, value in trained['student'].items():
        torch.testing.assert_close(loaded[key], value.cpu())
    image = osp.join(trained['root'], 'JPEGImages', f'{trained["stems"][4]}.jpg')
    result = inference_model(model, image)
    assert tuple(result.pred_sem_seg.data.shape[-2:]) == (32, 32)
    with torch.no_grad():  # the student's own prediction, from the training run
        student = init_model(cfg, device='cpu')
        student.load_state_dict(trained['student'])
        expected = inference_model(student, image)
    torch.testing.assert_close(result.seg_logits.data, expected.seg_logits.data)
    inferencer = MMSegInferencer(model=cfg, weights=trained['checkpoint'],
                                 device='cpu')
    prediction = inferencer(image, return_datasamples=True)
    torch.testing.assert_close(prediction.pred_sem_seg.data,
                               result.pred_sem_seg.data)
    # the MARS config itself builds a student-only model for inference too
    mars = init_model(tiny_cfg(MARS_CONFIG, trained['root'], str(tmp_path)),
                      trained['checkpoint'], device='cpu')
    assert mars.teacher_fn is None and set(mars.state_dict()) == set(loaded)
    # ...and predicts through the MARS config's own test_pipeline (the dataset
    # base's, with LoadCheckedAnnotations, which must pass bare images through).
    assert any(t['type'] == 'LoadCheckedAnnotations' for t in mars.cfg.test_pipeline)
    from_mars = inference_model(mars, image)
    assert tuple(from_mars.pred_sem_seg.data.shape[-2:]) == (32, 32)


def test_resume_restores_the_teacher(trained, tmp_path):
    init_default_scope('mmseg')
    cfg = tiny_cfg(MARS_CONFIG, trained['root'], str(tmp_path), trained['label_dir'])
    cfg.resume = True
    cfg.load_from = trained['checkpoint']
    cfg.train_cfg.max_iters = 4
    runner = Runner.from_cfg(cfg)
    runner.train()  # one more step, then one EMA step from the saved teacher
    teacher = teacher_hook(runner).teacher
    assert int(teacher.steps) == 5
    momentum = cfg.custom_hooks[0].momentum
    saved = trained['teacher']
    for name in ('decode_head.conv_seg.weight', 'backbone.stem.0.weight'):
        student_after = runner.model.state_dict()[name]
        torch.testing.assert_close(
            teacher.state_dict()[f'module.{name}'],
            (1 - momentum) * saved[f'module.{name}'] + momentum * student_after)


def test_tta_with_crf_is_the_views_mean_softmax_refined_by_the_crf(trained, tmp_path):
    """--tta predicts what the spec says, and the metric scores those predictions."""
    pytest.importorskip('pydensecrf')
    from mmengine.dataset import pseudo_collate

    from mars_mm.apis.launch import to_tta
    from mars_mm.apis.voc_export import build_predictor
    from mars_mm.core.crf import CRFParams
    from mars_mm.core.metrics import confusion_matrix, scores_from_confusion
    from mars_mm.core.refine import crf_refine_probs, present_classes
    from mars_mm.registry import DATASETS
    from mars_mm.utils.io import read_rgb
    init_default_scope('mmseg')
    cfg = tiny_cfg(MARS_CONFIG, trained['root'], str(tmp_path))
    # a 3-iteration model predicts background: a low bar lets many classes into
    # the CRF, so that its marginals are far from the views' mean softmax
    cfg.tta_model.candidate_min_prob = 0.01
    student = build_predictor(cfg, trained['checkpoint'], device='cpu')
    tta_model = build_predictor(cfg, trained['checkpoint'], tta=True, device='cpu')
    views_of = DATASETS.build(dict(cfg.val_dataloader.dataset,
                                   pipeline=cfg.tta_pipeline))
    counts = 0
    for index in range(len(views_of)):
        views = views_of[index]
        assert len(views['inputs']) == 4  # scales 1.0 and 0.5, each also flipped
        # by hand: the student on every view (logits at the original size, flips
        # undone), softmax averaged, then the CRF over the likely classes
        with torch.no_grad():
            probs = torch.stack([
                student.test_step(dict(inputs=[inputs], data_samples=[sample]))[0]
                .seg_logits.data.softmax(dim=0)
                for inputs, sample in zip(views['inputs'], views['data_samples'])
            ]).mean(dim=0).numpy()
        image = read_rgb(views['data_samples'][0].img_path)
        candidates = present_classes(probs, 0.01)
        assert len(candidates) > 2
        refined = crf_refine_probs(image, probs, candidates, CRFParams())
        # (the CRF moves the marginals well beyond the tolerance used below)
        assert np.abs(refined - probs).max() > 1e-4
        expected = refined.argmax(axis=0)
        with torch.no_grad():
            predicted = tta_model.test_step(pseudo_collate([views]))[0]
        np.testing.assert_allclose(predicted.seg_logits.data.numpy(), refined,
                                   rtol=0, atol=1e-6)
        np.testing.assert_array_equal(predicted.pred_sem_seg.data[0].numpy(),
                                      expected)
        gt = load_label_png(views['data_samples'][0].seg_map_path)
        counts = counts + confusion_matrix(gt, expected, 21)
    # tools/test.py --tta scores exactly these predictions
    cfg.load_from = trained['checkpoint']
    to_tta(cfg)
    metrics = Runner.from_cfg(cfg).test()
    assert metrics['mIoU'] == pytest.approx(scores_from_confusion(counts)['miou'],
                                            abs=0.01)


def test_voc_export_writes_server_archive(trained, tmp_path):
    from mars_mm.apis.voc_export import VOC_RESULT_DIR, export_voc_test
    init_default_scope('mmseg')
    cfg = tiny_cfg(MARS_CONFIG, trained['root'], str(tmp_path))
    out = str(tmp_path / 'export')
    archive = export_voc_test(cfg, trained['checkpoint'], out, tta=True,
                              device='cpu')
    expected = sorted(trained['stems'][4:] + ['test_odd'])
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    assert names == [f'{VOC_RESULT_DIR}/{stem}.png' for stem in expected]
    for stem in expected:
        path = osp.join(out, VOC_RESULT_DIR, f'{stem}.png')
        with Image.open(path) as png:
            assert png.mode == 'P'
        label = load_label_png(path)
        with Image.open(osp.join(trained['root'], 'JPEGImages',
                                 f'{stem}.jpg')) as image:
            assert label.shape == (image.height, image.width)
        assert label.max() <= 20
