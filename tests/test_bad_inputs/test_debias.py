"""tools/mars/debias.py: bad embeddings and labels, stale pass-1 files, leftovers."""
import glob
import os
import os.path as osp

import numpy as np
import pytest

from mars_mm.utils.io import load_label_png
from tests.test_bad_inputs import breakers
from tests.test_bad_inputs.harness import Case

TOOL = 'mars/debias.py'
STEM = '000004'


def _debias(sb, *extra, pseudo=None, emb=None, work='work'):
    config = sb.config('debias', pseudo=pseudo or sb.world.pseudo,
                       emb=emb or sb.world.emb)
    return sb.tool(TOOL, config, '--work-dir', sb.path(work), *extra)


def _emb(sb, breaker):
    emb = sb.copy(sb.world.emb, 'emb')
    breaker(osp.join(emb, STEM + '.npy'))
    return emb


def _pseudo(sb, breaker):
    pseudo = sb.copy(sb.world.pseudo, 'pseudo')
    breaker(osp.join(pseudo, STEM + '.png'))
    return pseudo


def _save(path, array):
    os.remove(path)
    np.save(path, array)


def emb_wrong_dim(sb):
    emb = _emb(sb, lambda path: _save(path, np.load(path)[:12]))
    return _debias(sb, emb=emb)  # the planted config centres on the dataset mean


def label_wrong_size(sb):
    return _debias(sb, pseudo=_pseudo(sb, breakers.resize_label))


def label_bad_value(sb):
    return _debias(sb, pseudo=_pseudo(sb, lambda path: breakers.relabel(path, 9)))


def emb_missing(sb):
    return _debias(sb, emb=_emb(sb, os.remove))


def emb_nan(sb):
    def breaker(path):
        array = np.load(path)
        array[0, 0, 0] = np.nan
        _save(path, array)
    return _debias(sb, emb=_emb(sb, breaker))


def emb_wrong_grid(sb):
    return _debias(sb, emb=_emb(sb, lambda path: _save(path, np.load(path)[:, :2])))


def emb_truncated(sb):
    return _debias(sb, emb=_emb(sb, breakers.truncate))


def other_settings(sb):
    first = _debias(sb)
    assert first.rc == 0, first.message
    return _debias(sb, '--cfg-options', 'debias.k_fg=3')


def cfg_typo(sb):
    return _debias(sb, '--cfg-options', 'debias.alpah=0.5')


def _labels(folder):
    return {osp.basename(path): load_label_png(path)
            for path in sorted(glob.glob(osp.join(folder, 'labels', '*.png')))}


def stale_after_fix(sb):
    """A run on a bad embedding, then the embedding is fixed and the job rerun."""
    emb = sb.copy(sb.world.emb, 'emb')
    good = np.load(osp.join(emb, STEM + '.npy'))
    _save(osp.join(emb, STEM + '.npy'), np.ascontiguousarray(good[:, ::-1, ::-1]))
    first = _debias(sb, emb=emb)
    assert first.rc == 0, first.message
    _save(osp.join(emb, STEM + '.npy'), good)
    return _debias(sb, emb=emb)


def _same_as_fresh(sb, result):
    fresh = _debias(sb, emb=sb.path('emb'), work='fresh')
    assert fresh.rc == 0, fresh.message
    with np.load(sb.path('fresh', 'centroids.npz')) as a, \
            np.load(sb.path('work', 'centroids.npz')) as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    expected, got = _labels(sb.path('fresh')), _labels(sb.path('work'))
    assert expected.keys() == got.keys()
    differ = [name for name in expected if not np.array_equal(expected[name],
                                                              got[name])]
    assert not differ, f'labels differ from a fresh run: {differ}'


def leftovers(sb):
    """A kill during the merge leaves its temporaries in the work dir."""
    first = _debias(sb)
    assert first.rc == 0, first.message
    for name in ('.tmp-k1ll3d.raw', '.tmp-k1ll3d.npy', 'centroid_vectors.npy.raw'):
        with open(sb.path('work', name), 'wb') as handle:
            handle.write(b'\0' * 64)
    return _debias(sb)


def _no_leftovers(sb, result):
    left = [name for name in os.listdir(sb.path('work'))
            if name.startswith('.tmp-') or name.endswith('.raw')]
    assert not left, left


def centroid_truncated(sb):
    """A per-image centroid file damaged after the run (e.g. a partial copy)."""
    first = _debias(sb)
    assert first.rc == 0, first.message
    breakers.truncate(sb.path('work', 'centroids', STEM + '.npz'))
    return _debias(sb)


def _centroids_like_fresh(sb, result):
    fresh = _debias(sb, work='fresh')
    assert fresh.rc == 0, fresh.message
    with np.load(sb.path('fresh', 'centroids.npz')) as a, \
            np.load(sb.path('work', 'centroids.npz')) as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def exif_rotated(sb):
    """A non-square photo stored sideways (32x48) with an EXIF rotation: every
    loader shows it 48x32, so its pseudo label (and embedding grid) are 48x32."""
    from PIL import Image

    from mars_mm.utils.io import save_label_png
    data = sb.copy(sb.world.data, 'data')
    path = osp.join(data, 'JPEGImages', STEM + '.jpg')
    with Image.open(path) as image:
        stored = image.convert('RGB').resize((48, 32))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(path, exif=exif.tobytes())
    save_label_png(osp.join(data, 'SegmentationClass', STEM + '.png'),
                   np.zeros((48, 32), np.uint8))
    pseudo = _pseudo(sb, lambda label: save_label_png(
        label, np.resize(load_label_png(label), (48, 32))))
    emb = _emb(sb, lambda path: _save(path, np.resize(
        np.load(path), (np.load(path).shape[0], 6, 4))))
    config = sb.config('debias', pseudo=pseudo, emb=emb, data=data)
    return sb.tool(TOOL, config, '--work-dir', sb.path('work'))


def _turned_label(sb, result):
    assert load_label_png(sb.path('work', 'labels', STEM + '.png')).shape == (48, 32)


CASES = [
    Case('emb-wrong-dim', TOOL, 'unclear',
         'one embedding with 12 channels, the others 24 (dataset centring)',
         emb_wrong_dim, 1, rf"{STEM}\.npy.*12.*24"),
    Case('label-wrong-size', TOOL, 'unclear', 'a pseudo label of 16x16 for 32x32',
         label_wrong_size, 1, rf"pseudo/{STEM}\.png.*size"),
    Case('label-bad-value', TOOL, 'handled', 'a pseudo label holding 9 (7 classes)',
         label_bad_value, 1, rf"{STEM}\.png.*9"),
    Case('emb-missing', TOOL, 'handled', 'an embedding missing', emb_missing, 1,
         rf"{STEM}\.npy"),
    Case('emb-nan', TOOL, 'handled', 'an embedding holding NaN', emb_nan, 1,
         rf"{STEM}\.npy.*NaN"),
    Case('emb-wrong-grid', TOOL, 'handled', 'an embedding on a 2x4 grid for 32x32',
         emb_wrong_grid, 1, rf"{STEM}\.npy.*grid"),
    Case('emb-truncated', TOOL, 'handled', 'a truncated embedding .npy',
         emb_truncated, 1, rf"{STEM}\.npy"),
    Case('resume-other-settings', TOOL, 'handled',
         'rerun into the same work dir with `debias.k_fg=3`', other_settings, 1,
         r"pass1_params\.json"),
    Case('cfg-typo', TOOL, 'unclear', '`--cfg-options debias.alpah=0.5`', cfg_typo, 1,
         r"debias\.alpah.*alpha"),
    Case('stale-after-fix', TOOL, 'silent 9',
         'rerun after fixing an embedding: pass-1 files made from the bad one',
         stale_after_fix, 0, rf"{STEM}.*(other|changed) inputs", _same_as_fresh),
    Case('merge-leftovers', TOOL, 'silent 9',
         'rerun after a kill during the merge (`.tmp-*.raw` left)', leftovers, 0,
         r"removed 3 temporary files a killed merge left in .*work.*"
         r"\.tmp-k1ll3d\.raw", _no_leftovers),
    Case('centroid-truncated', TOOL, 'new unclear',
         'a damaged per-image centroid file in the work dir', centroid_truncated, 0,
         rf"{STEM}\.npz", _centroids_like_fresh),
    Case('exif-rotated-image', TOOL, 'unclear 10', 'a 48x32 photo stored as 32x48 '
         'with an EXIF rotation, its pseudo label 48x32', exif_rotated, 0, r'',
         _turned_label, issue=20),
]

@pytest.mark.parametrize('case', CASES, ids=lambda case: case.name)
def test_bad_input(case, sandbox):
    case.verify(sandbox, case.run(sandbox))
