"""Property-based tests (hypothesis): random sizes and values.

- gradcheck passes for every layer and loss;
- sigmoid, tanh and the losses never return NaN for finite input;
- state-dict and model-file round trips are exact.
"""

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nnlayers import BCELoss, BCEWithLogitsLoss, Dense, ReLU, Sequential, Sigmoid, Tanh, gradcheck, load, save

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.integers(1, 6)
moderate = st.floats(-3, 3, allow_nan=False, allow_infinity=False)
any_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@st.composite
def batch(draw, elements=moderate, min_abs=0.0):
    n, d = draw(sizes), draw(sizes)
    x = draw(arrays(np.float64, (n, d), elements=elements))
    if min_abs:  # keep ReLU's kink out of the finite-difference step
        x = np.where(np.abs(x) < min_abs, min_abs, x)
    return x


@SETTINGS
@given(x=batch(), out=sizes, bias=st.booleans(), seed=st.integers(0, 2**16))
def test_dense_gradcheck(x, out, bias, seed):
    assert gradcheck(Dense(x.shape[1], out, bias=bias, rng=seed), x).passed


@SETTINGS
@given(x=batch(min_abs=1e-3), layer=st.sampled_from([Tanh, Sigmoid, ReLU]))
def test_activation_gradcheck(x, layer):
    assert gradcheck(layer(), x).passed


@SETTINGS
@given(
    x=batch(min_abs=1e-3), hidden=sizes, activation=st.sampled_from([Tanh, Sigmoid, ReLU]), seed=st.integers(0, 2**16)
)
def test_model_gradcheck(x, hidden, activation, seed):
    model = Sequential([Dense(x.shape[1], hidden, rng=seed), activation(), Dense(hidden, 1, rng=seed + 1), Sigmoid()])
    if activation is ReLU:  # a pre-activation within a step of 0 puts ReLU's kink inside the difference
        assume(np.abs(model[0](x)).min() > 1e-4)
    assert gradcheck(model, x).passed


@st.composite
def predictions_and_targets(draw, logits):
    n = draw(st.integers(1, 8))
    elements = st.floats(-6, 6) if logits else st.floats(0.02, 0.98)
    pred = draw(arrays(np.float64, (n, 1), elements=elements))
    target = draw(arrays(np.float64, (n, 1), elements=st.floats(0, 1)))
    return pred, target


@SETTINGS
@given(data=predictions_and_targets(logits=False), reduction=st.sampled_from(["mean", "sum"]))
def test_bce_gradcheck(data, reduction):
    assert gradcheck(BCELoss(reduction), *data).passed


@SETTINGS
@given(data=predictions_and_targets(logits=True), reduction=st.sampled_from(["mean", "sum"]))
def test_logits_loss_gradcheck(data, reduction):
    assert gradcheck(BCEWithLogitsLoss(reduction), *data).passed


@settings(max_examples=200, deadline=None)
@given(
    z=arrays(np.float64, st.tuples(st.integers(1, 6), st.integers(1, 4)), elements=any_finite),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_activations_are_finite_for_finite_input(z, dtype):
    z = z.astype(dtype) if dtype == np.float64 else np.clip(z, -3e38, 3e38).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        for layer in (Sigmoid(), Tanh()):
            y = layer(z)
            g = layer.backward(np.ones_like(z))
            assert np.isfinite(y).all() and np.isfinite(g).all() and y.dtype == dtype


@settings(max_examples=200, deadline=None)
@given(
    z=arrays(np.float64, st.integers(1, 8), elements=any_finite),
    p=arrays(np.float64, st.integers(1, 8), elements=st.floats(0, 1)),
    t=st.floats(0, 1),
)
def test_losses_are_finite_for_finite_input(z, p, t):
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        fused = BCEWithLogitsLoss()
        assert np.isfinite(fused(z, np.full(len(z), t))) and np.isfinite(fused.backward()).all()
        bce = BCELoss()
        assert np.isfinite(bce(p, np.full(len(p), t))) and np.isfinite(bce.backward()).all()


@st.composite
def models(draw):
    d, h = draw(st.integers(1, 12)), draw(st.integers(1, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    activation = draw(st.sampled_from([Tanh, Sigmoid, ReLU]))
    model = Sequential(
        [Dense(d, h, dtype=dtype, rng=0), activation(), Dense(h, 1, bias=draw(st.booleans()), dtype=dtype, rng=1)]
    )
    for param in model.parameters():  # arbitrary values, including extreme ones
        param.data[...] = draw(arrays(dtype, param.shape, elements=st.floats(-(2.0**100), 2.0**100, width=32)))
    return model


@SETTINGS
@given(model=models())
def test_state_dict_round_trip_is_exact(model):
    twin = Sequential([type(layer)(**layer.get_config()) for layer in model])
    twin.load_state_dict(model.state_dict())
    for (name, a), (_, b) in zip(model.state_dict().items(), twin.state_dict().items()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name


@SETTINGS
@given(model=models(), classes=st.lists(st.text(min_size=1, max_size=8), min_size=2, max_size=2, unique=True))
def test_model_file_round_trip_is_exact(model, classes):
    with tempfile.TemporaryDirectory() as tmp:
        path = save(model, Path(tmp) / "m.nnl", classes=classes, metadata={"note": classes[0]})
        loaded = load(path)
    assert repr(loaded) == repr(model) and loaded.classes == classes and loaded.metadata == {"note": classes[0]}
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
