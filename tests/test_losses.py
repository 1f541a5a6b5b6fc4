"""BCELoss and BCEWithLogitsLoss: hand-worked values, saturation, shapes and target checks."""

import numpy as np
import pytest

from nnlayers import BCELoss, BCEWithLogitsLoss, Sigmoid


def test_bce_by_hand():
    p = np.array([[0.9], [0.2], [0.6]])
    y = np.array([[1.0], [0.0], [1.0]])
    loss_fn = BCELoss()
    expected = -(np.log(0.9) + np.log(0.8) + np.log(0.6)) / 3
    assert loss_fn(p, y) == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(loss_fn.backward(), -(y / p - (1 - y) / (1 - p)) / 3, rtol=1e-14)


def test_bce_sum_reduction():
    p = np.array([0.9, 0.2])
    y = np.array([1, 0])
    assert BCELoss("sum")(p, y) == pytest.approx(-(np.log(0.9) + np.log(0.8)), rel=1e-14)
    with pytest.raises(ValueError, match="reduction must be one of"):
        BCELoss("avg")


def test_sigmoid_then_bce_gives_a_minus_y():
    z = np.array([[-3.0], [0.5], [2.0]])
    y = np.array([[0.0], [1.0], [1.0]])
    sig, loss_fn = Sigmoid(), BCELoss()
    a = sig(z)
    loss_fn(a, y)
    np.testing.assert_allclose(sig.backward(loss_fn.backward()), (a - y) / 3, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_saturated_prediction_gives_finite_loss_and_gradient(dtype):
    loss_fn = BCELoss()
    p = np.array([[1.0], [0.0]], dtype=dtype)  # a saturated sigmoid, wrong both times
    y = np.array([[0.0], [1.0]])
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        loss = loss_fn(p, y)
        grad = loss_fn.backward()
    assert np.isfinite(loss) and loss > 10  # large (clamped at eps), but finite
    assert np.isfinite(grad).all() and grad.dtype == dtype
    assert grad[0, 0] > 0 > grad[1, 0]  # still pushes the right way


def test_logits_loss_matches_sigmoid_bce_and_gradient_is_sigmoid_minus_y():
    z = np.array([[-4.0], [-0.3], [0.0], [2.5]])
    y = np.array([[0.0], [1.0], [0.5], [1.0]])
    fused = BCEWithLogitsLoss()
    loss = fused(z, y)
    p = 1 / (1 + np.exp(-z))
    expected = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert loss == pytest.approx(expected, rel=1e-13)
    np.testing.assert_allclose(fused.backward(), (p - y) / 4, rtol=1e-13)


def test_logits_loss_is_stable_for_huge_logits():
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss_fn = BCEWithLogitsLoss()
        loss = loss_fn(np.array([[1000.0], [-1000.0]]), np.array([[0.0], [1.0]]))
        grad = loss_fn.backward()
    assert loss == pytest.approx(1000.0)
    np.testing.assert_array_equal(grad, [[0.5], [-0.5]])


@pytest.mark.parametrize("loss_cls", [BCELoss, BCEWithLogitsLoss])
def test_target_shapes_accepted_and_gradient_shaped_like_pred(loss_cls):
    pred = np.array([[0.3], [0.6]])
    a = loss_cls()(pred, np.array([0, 1]))
    b = loss_cls()(pred, np.array([[0], [1]]))
    assert a == b
    flat = loss_cls()
    flat(pred.ravel(), np.array([[0], [1]]))
    assert flat.backward().shape == (2,)


@pytest.mark.parametrize("loss_cls", [BCELoss, BCEWithLogitsLoss])
@pytest.mark.parametrize(
    "pred, target, error, message",
    [
        (
            np.full((3, 1), 0.5),
            np.zeros((3, 2)),
            ValueError,
            r"expected target of shape \(3, 1\) or \(3,\).*got \(3, 2\)",
        ),
        (np.full((3, 1), 0.5), np.zeros(4), ValueError, r"got \(4,\)"),
        (
            np.full((3, 2), 0.5),
            np.zeros((3, 2)),
            ValueError,
            r"expected pred of shape \(N, 1\) or \(N,\), got \(3, 2\)",
        ),
        (np.full((3, 1), 0.5), np.array([0, 1, 2]), ValueError, r"targets in \[0, 1\], got 2"),
        (np.full((3, 1), 0.5), np.array([0, -1, 1]), ValueError, r"targets in \[0, 1\], got -1"),
        (np.full((3, 1), 0.5), np.array([0, np.nan, 1]), ValueError, r"targets in \[0, 1\], got nan"),
        (np.zeros((0, 1)), np.zeros(0), ValueError, "empty batch"),
        (np.full((3, 1), 1, dtype=int), np.zeros(3), TypeError, "floating-point"),
        (np.full((3, 1), 0.5), np.array(["a", "b", "c"], dtype=object), TypeError, "real numeric target"),
    ],
)
def test_bad_inputs_are_clear_errors(loss_cls, pred, target, error, message):
    with pytest.raises(error, match=message):
        loss_cls()(pred, target)


def test_bce_refuses_probabilities_outside_unit_interval():
    with pytest.raises(ValueError, match=r"predictions in \[0, 1\].*BCEWithLogitsLoss"):
        BCELoss()(np.array([[1.5]]), np.array([[1.0]]))


def test_loss_backward_before_forward():
    with pytest.raises(RuntimeError, match="BCELoss.backward\\(\\) called before forward\\(\\)"):
        BCELoss().backward()


def test_cross_entropy_by_hand():
    from nnlayers import CrossEntropyLoss

    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    y = np.array([2, 0])
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss_fn = CrossEntropyLoss()
    assert loss_fn(z, y) == pytest.approx(-(np.log(p[0, 2]) + np.log(p[1, 0])) / 2, rel=1e-14)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(loss_fn.backward(), (p - onehot) / 2, rtol=1e-13)  # the K-class dZ = A - Y
    smooth = CrossEntropyLoss(label_smoothing=0.3)
    target = 0.7 * onehot + 0.1  # 0.3 spread over 3 classes
    assert smooth(z, y) == pytest.approx(-np.sum(target * np.log(p)) / 2, rel=1e-13)
    weighted = CrossEntropyLoss(weight=np.array([1.0, 1.0, 3.0]))
    assert weighted(z, y) == pytest.approx(-(3 * np.log(p[0, 2]) + np.log(p[1, 0])) / 4, rel=1e-13)


def test_cross_entropy_bad_targets():
    from nnlayers import CrossEntropyLoss

    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\), got 0..3"):
        CrossEntropyLoss()(z, np.array([0, 3]))
    with pytest.raises(ValueError, match="expected integer class indices of shape"):
        CrossEntropyLoss()(z, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected pred of shape \(N, K\)"):
        CrossEntropyLoss()(np.zeros(3), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="weight has 2 entries for 3 classes"):
        CrossEntropyLoss(weight=[1.0, 2.0])(z, np.array([0, 1]))
    assert np.isfinite(CrossEntropyLoss()(np.array([[1e4, -1e4, 0.0]]), np.array([1])))  # stable for large scores


def test_bce_refuses_a_batch_with_one_probability_out_of_range():
    p = np.array([[0.2], [0.9], [1.5], [0.4]])  # one bad entry among good ones
    with pytest.raises(ValueError, match="expected predictions in \\[0, 1\\]"):
        BCELoss()(p, np.array([0, 1, 1, 0]))


def test_cross_entropy_refuses_bad_weights_and_negative_targets():
    from nnlayers import CrossEntropyLoss

    for weight in ([1.0, np.nan, 1.0], [1.0, -0.5, 1.0]):  # one bad entry among good ones
        with pytest.raises(ValueError, match="weight must be a 1-D array of non-negative numbers"):
            CrossEntropyLoss(weight=weight)
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\), got -1..2"):
        CrossEntropyLoss()(np.zeros((3, 3)), np.array([0, -1, 2]))  # -1 would silently index the last class
    assert repr(CrossEntropyLoss(weight=[1.0, 2.0], label_smoothing=0.1)) == (
        "CrossEntropyLoss(reduction='mean', label_smoothing=0.1, weight=[...])"
    )


def test_softmax_and_log_softmax_on_rows():
    from nnlayers.nn.functional import log_softmax, softmax

    z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1000.0]])  # 2 rows of 3: not square
    expected = np.exp(z[0]) / np.exp(z[0]).sum()
    np.testing.assert_allclose(softmax(z)[0], expected, rtol=1e-14)
    np.testing.assert_allclose(softmax(z)[1], [0.0, 0.0, 1.0], atol=1e-300)
    np.testing.assert_allclose(np.exp(log_softmax(z)), softmax(z), rtol=1e-12)
