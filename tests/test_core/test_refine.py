"""Both CRF refinements: the binary debias-map one and the multi-class one."""
import numpy as np
import pytest

from mars_mm.core import refine
from mars_mm.core.crf import CRFParams, dense_crf


def test_binarise_threshold_and_crf():
    debias = np.zeros((24, 32), np.float32)
    debias[6:18, 8:24] = 0.9
    keep = refine.binarise_map(
        debias, refinement=refine.Refinement('threshold', threshold=0.5))
    np.testing.assert_array_equal(keep, debias > 0.5)
    image = np.full((24, 32, 3), 30, np.uint8)
    image[6:18, 8:24] = 220
    keep = refine.binarise_map(debias, image, refine.Refinement('crf'))
    np.testing.assert_array_equal(keep, debias > 0.5)
    with pytest.raises(ValueError, match='RGB image'):
        refine.binarise_map(debias, None, refine.Refinement('crf'))
    with pytest.raises(ValueError, match='refinement method'):
        refine.Refinement('otsu')


def test_refinement_is_the_one_of_core_debias():
    from mars_mm.core import debias
    assert debias.Refinement is refine.Refinement
    assert debias.binarise_map is refine.binarise_map


def test_refinement_from_config():
    refinement = refine.Refinement.from_config(
        dict(type='crf', gamma=2.0, crf=dict(num_iters=5)))
    assert refinement.method == 'crf' and refinement.gamma == 2.0
    assert refinement.crf.num_iters == 5 and refinement.crf.bilateral_sxy == 67.0


def test_fast_crf_options_agree_with_the_full_crf():
    rng = np.random.default_rng(4)
    height, width = 64, 96
    image = np.full((height, width, 3), 40, np.uint8)
    image[16:48, 24:72] = 200
    image = np.clip(image + rng.normal(0, 5, image.shape), 0, 255).astype(np.uint8)
    debias = np.full((height, width), 0.3, np.float32)
    debias[16:48, 24:72] = 0.7
    debias = np.clip(debias + rng.normal(0, 0.1, debias.shape), 0, 1)
    foreground = np.zeros((height, width), bool)
    foreground[10:54, 20:60] = True
    full = refine.binarise_map(debias, image, refine.Refinement('crf'))
    expected = np.zeros((height, width), bool)
    expected[16:48, 24:72] = True
    assert np.mean(full == expected) > 0.98
    for options in (dict(crop_margin=8), dict(scale=0.5),
                    dict(crop_margin=8, scale=0.5)):
        fast = refine.binarise_map(debias, image,
                                   refine.Refinement('crf', **options), foreground)
        assert np.mean(fast[foreground] == full[foreground]) > 0.97, options
    cropped = refine.binarise_map(debias, image,
                                  refine.Refinement('crf', crop_margin=2), foreground)
    # outside the grown box only the threshold decides
    np.testing.assert_array_equal(cropped[:, 62:], debias[:, 62:] > 0.5)
    with pytest.raises(ValueError, match='scale'):
        refine.Refinement('crf', scale=2.0)


def test_present_classes_argmax_and_min_prob():
    probs = np.zeros((4, 2, 3), np.float32)
    probs[2] = 0.6  # wins everywhere
    probs[3, 0, 0] = 0.5  # never wins, but reaches 0.5
    np.testing.assert_array_equal(refine.present_classes(probs), [0, 2])
    np.testing.assert_array_equal(refine.present_classes(probs, min_prob=0.5),
                                  [0, 2, 3])


def test_crf_refine_probs_only_touches_candidates():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
    probs = rng.dirichlet(np.ones(5), size=(12, 16)).transpose(2, 0, 1)
    refined = refine.crf_refine_probs(image, probs, candidates=[0, 3])
    assert refined.shape == probs.shape and refined.dtype == np.float32
    np.testing.assert_array_equal(refined[[1, 2, 4]], 0)
    np.testing.assert_allclose(refined[[0, 3]],
                               dense_crf(image, probs[[0, 3]], CRFParams()),
                               rtol=1e-6)
    single = refine.crf_refine_probs(image, probs, candidates=[2])
    np.testing.assert_array_equal(single[2], 1)
    assert single.sum() == 12 * 16
