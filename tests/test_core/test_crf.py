"""The one CRF wrapper against a direct pydensecrf call with the same parameters."""
import numpy as np
import pytest

from mars_mm.core.crf import CRFParams, crf_labels, dense_crf

dcrf = pytest.importorskip('pydensecrf.densecrf')


def direct_pydensecrf(image, probs, iters, g_sxy, g_compat, b_sxy, b_srgb, b_compat):
    """Written out from pydensecrf's API, without the wrapper's helpers."""
    num_labels, height, width = probs.shape
    probs = probs / probs.sum(axis=0, keepdims=True)
    unary = -np.log(np.clip(probs, 1e-8, None)).reshape(num_labels, -1)
    crf = dcrf.DenseCRF2D(width, height, num_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary.astype(np.float32)))
    crf.addPairwiseGaussian(sxy=g_sxy, compat=g_compat)
    crf.addPairwiseBilateral(sxy=b_sxy, srgb=b_srgb,
                             rgbim=np.ascontiguousarray(image), compat=b_compat)
    return np.array(crf.inference(iters)).reshape(num_labels, height, width)


def make_inputs(seed=0, height=24, width=31, num_labels=3):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    probs = rng.random((num_labels, height, width)).astype(np.float32) + 0.05
    return image, probs


def test_dense_crf_equals_direct_call_default_params():
    image, probs = make_inputs()
    got = dense_crf(image, probs)
    expected = direct_pydensecrf(image, probs, 10, 1, 3, 67, 3, 4)
    assert got.shape == probs.shape
    assert np.allclose(got, expected, atol=1e-6)


def test_dense_crf_equals_direct_call_custom_params():
    image, probs = make_inputs(seed=1, num_labels=2)
    params = CRFParams(num_iters=4, gaussian_sxy=3, gaussian_compat=2,
                       bilateral_sxy=20, bilateral_srgb=10, bilateral_compat=6)
    got = dense_crf(image, probs, params)
    expected = direct_pydensecrf(image, probs, 4, 3, 2, 20, 10, 6)
    assert np.allclose(got, expected, atol=1e-6)


def test_crf_labels_maps_channels_to_label_ids():
    image, probs = make_inputs(seed=2)
    expected_index = direct_pydensecrf(image, probs, 10, 1, 3, 67, 3, 4).argmax(0)
    labels = crf_labels(image, probs, label_ids=[0, 7, 15])
    assert np.array_equal(labels, np.array([0, 7, 15])[expected_index])
    assert np.array_equal(crf_labels(image, probs), expected_index)


def test_dense_crf_rejects_mismatched_sizes():
    image, probs = make_inputs()
    with pytest.raises(ValueError, match='differ in size'):
        dense_crf(image[:-1], probs)
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        dense_crf(image[..., 0], probs)
