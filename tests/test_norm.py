"""BatchNorm1D, BatchNorm2D and Dropout: gradcheck, modes, running statistics, masks."""

import numpy as np
import pytest

from nnlayers import BatchNorm1D, BatchNorm2D, Dense, Dropout, Sequential, gradcheck

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (BatchNorm1D(4, dtype=np.float64), (6, 4)),
        (BatchNorm2D(3, dtype=np.float64), (2, 4, 5, 3)),
        (BatchNorm2D(3, affine=False, dtype=np.float64), (3, 3, 3, 3)),
        (BatchNorm1D(4, momentum=None, dtype=np.float64), (5, 4)),
    ],
    ids=["bn1d", "bn2d", "bn2d-no-affine", "bn1d-cumulative"],
)
def test_batchnorm_gradcheck_in_training_and_evaluation(layer, shape):
    if layer.affine:
        layer.weight.data[...] = RNG.uniform(0.5, 2, layer.num_features)
    x = RNG.normal(loc=1.0, scale=2.0, size=shape)
    assert gradcheck(layer.train(), x).passed  # the batch statistics depend on every input
    layer(x)  # give the running statistics something to hold
    assert gradcheck(layer.eval(), x).passed


def test_batchnorm_normalises_with_batch_statistics_and_tracks_running_ones():
    bn = BatchNorm1D(2, momentum=0.5, dtype=np.float64)
    x = np.array([[1.0, 10.0], [3.0, 20.0], [5.0, 30.0]])
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=0), 1 / (1 + 1e-5 / x.var(axis=0)), rtol=1e-9)  # biased variance
    np.testing.assert_allclose(bn.running_mean, 0.5 * x.mean(axis=0))
    np.testing.assert_allclose(bn.running_var, 0.5 + 0.5 * x.var(axis=0, ddof=1))  # unbiased in the running one
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    np.testing.assert_allclose(bn(x), (x - bn.running_mean) / np.sqrt(bn.running_var + 1e-5))
    assert int(bn.num_batches_tracked) == 1  # evaluation does not update


def test_batchnorm_without_running_statistics_uses_the_batch_in_evaluation():
    bn = BatchNorm2D(3, track_running_stats=False, dtype=np.float64).eval()
    x = RNG.normal(loc=5.0, size=(2, 3, 3, 3))
    np.testing.assert_allclose(bn(x).mean(axis=(0, 1, 2)), 0, atol=1e-12)
    assert list(bn.state_dict()) == ["weight", "bias"]


def test_batchnorm_state_dict_keys_are_torch_keys():
    assert list(BatchNorm2D(8).state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in BatchNorm2D(8).named_parameters()] == ["weight", "bias"]  # buffers are not trained


def test_batchnorm_errors():
    with pytest.raises(
        ValueError, match=r"expected input \(N, H, W, C\), channels last with C = 3, got \(2, 3, 4, 4\)"
    ):
        BatchNorm2D(3)(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="more than one value per channel"):
        BatchNorm1D(3)(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="momentum must be in"):
        BatchNorm1D(3, momentum=2)


def test_dropout_masks_scales_and_is_the_identity_in_evaluation():
    drop = Dropout(0.25, rng=0)
    x = np.ones((200, 50))
    y = drop(x)
    assert set(np.unique(y)) == {0.0, 4 / 3}
    assert abs((y == 0).mean() - 0.25) < 0.02  # about p of the entries dropped
    g = RNG.normal(size=x.shape)
    np.testing.assert_array_equal(drop.backward(g), g * y)  # the same mask, the same scale
    assert np.array_equal(Dropout(0.25, rng=0)(x), y)  # seeded: the same masks
    drop.eval()
    assert drop(x) is x or np.array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(g), g)


class FixedDropout(Dropout):
    """Dropout with one mask for every call, so that central differences see one function."""

    def sample_mask(self, shape, dtype):
        if not hasattr(self, "fixed"):
            self.fixed = super().sample_mask(shape, dtype)
        return self.fixed


def test_dropout_with_a_fixed_mask_gradchecks():
    model = Sequential(
        [Dense(5, 6, rng=0, dtype=np.float64), FixedDropout(0.5, rng=1), Dense(6, 1, rng=2, dtype=np.float64)]
    )
    assert gradcheck(model, RNG.normal(size=(4, 5))).passed


def test_dropout_arguments():
    with pytest.raises(ValueError, match="p must be below 1"):
        Dropout(1.0)
    with pytest.raises(ValueError, match=r"Dropout p must be in \[0, 1\]"):
        Dropout(-0.1)
    assert np.array_equal(Dropout(0.0)(np.ones((2, 2))), np.ones((2, 2)))


def test_float64_batchnorm_round_trips_in_float64(tmp_path):
    from nnlayers import load, save

    model = Sequential([BatchNorm1D(3, dtype=np.float64, affine=False)])
    assert model[0].get_config()["dtype"] == "float64"
    assert load(save(model, tmp_path / "bn.nnl"))[0].running_mean.dtype == np.float64
