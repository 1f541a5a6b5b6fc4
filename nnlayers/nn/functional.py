"""Pure array math shared by layers and losses (as ``torch.nn.functional``): no state, no caches.

Layers are thin objects over these functions: they call them in ``forward``, keep what
``backward`` needs, and apply the matching derivative.
"""

from __future__ import annotations

from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
from numpy.typing import DTypeLike

from ..utils.fastmath import exp_
from ..utils.threads import elementwise as elementwise  # the threads' entry points, for the layers
from ..utils.threads import for_ranges as for_ranges
from ..utils.threads import matmul as matmul
from ..utils.threads import row_sums as row_sums
from ..utils.threads import with_blas_threads as with_blas_threads
from ..utils.types import Array


def sigmoid(z: Array) -> Array:
    """Numerically stable logistic function ``1 / (1 + exp(-z))``.

    Where ``exp(-z)`` overflows the result is the limit, 0, without a warning: inputs of +-1000 give
    exactly 1 and 0. For large negative ``z`` the quotient keeps its relative precision.

    Examples:
        >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
        array([0. , 0.5, 1. ])
    """
    z = np.asarray(z)
    with np.errstate(over="ignore"):  # exp(-z) of z < -88 (float32) is inf, and 1 / (1 + inf) the right 0
        e = np.exp(np.negative(z))
    if not isinstance(e, np.ndarray):  # a scalar
        return 1 / (1 + e)
    e += e.dtype.type(1)
    return np.reciprocal(e, out=e)  # three passes, accurate to a few ulp on both tails


def add(a: Array, b: Array) -> Array:
    """``a + b`` of two arrays of one shape (where branches meet), its rows over the threads."""
    if a.shape != b.shape:
        return a + b
    return elementwise(np.add, np.empty(a.shape, np.result_type(a, b)), a, b)


def log_softmax(z: Array, axis: int = -1) -> Array:
    """``log(softmax(z))`` without overflow: ``z - max - log(sum(exp(z - max)))``."""
    shifted = z - z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z: Array, axis: int = -1) -> Array:
    """``exp(z) / sum(exp(z))`` along ``axis``, shifted by the maximum so that ``exp`` never overflows.

    Examples:
        >>> softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])).round(3)
        array([[0.5 , 0.5 ],
               [0.25, 0.75]])
    """
    z = np.asarray(z)
    return _normalized_exp_(z - z.max(axis=axis, keepdims=True), axis)


def _normalized_exp_(shifted: Array, axis: int) -> Array:
    """``exp(shifted) / sum(exp(shifted))`` along ``axis``, in ``shifted``'s own memory (floats)."""
    if shifted.dtype.kind != "f":
        shifted = shifted.astype(np.float64)
    exp_(shifted)  # OpenCV's exp where it can: four times numpy's float32 speed
    shifted /= shifted.sum(axis=axis, keepdims=True)
    return shifted


def column_sums(rows: Array) -> Array:
    """``rows.sum(axis=0)`` of a 2-D array, as one BLAS product with a vector of ones.

    numpy sums the columns of a tall ``(M, C)`` array one row at a time on one core; the product
    ``ones @ rows`` reads it once on every core, several times faster for activations of
    millions of entries (batch norm's means, a convolution's bias gradient).
    """
    return matmul(np.ones((1, len(rows)), rows.dtype), rows)[0]


def log1p_exp(z: Array) -> Array:
    """``log(1 + exp(z))`` (softplus) without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Spatial size after a window of ``kernel`` (spread by ``dilation``) moved by ``stride`` over ``size``
    padded by ``padding``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


#: Convolution padding modes, as torch names them, and numpy's names for them.
PADDING_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_hw(x: Array, padding: Tuple[int, int], value: float = 0.0, mode: str = "zeros") -> Array:
    """``x`` ``(N, H, W, C)`` with ``padding = (ph, pw)`` rows and columns on each side: of ``value``, or
    (``mode``) the image reflected, its edge repeated, or wrapped around."""
    ph, pw = padding
    if not ph and not pw:
        return x
    widths = ((0, 0), (ph, ph), (pw, pw), (0, 0))
    if mode == "zeros":  # one pass, images over the threads: the border filled, the inside copied
        n, h, w, c = x.shape
        xp = np.empty((n, h + 2 * ph, w + 2 * pw, c), x.dtype)

        def images(s: int, e: int) -> None:
            xp[s:e, :ph], xp[s:e, ph + h :] = value, value
            xp[s:e, ph : ph + h, :pw], xp[s:e, ph : ph + h, pw + w :] = value, value
            xp[s:e, ph : ph + h, pw : pw + w] = x[s:e]

        for_ranges(n, images, 2 * xp.size)
        return xp
    return np.pad(x, widths, mode=PADDING_MODES[mode])  # type: ignore[call-overload]


def unpad_hw(grad: Array, padding: Tuple[int, int], x_shape: Tuple[int, ...], mode: str = "zeros") -> Array:
    """The adjoint of `pad_hw`: the padded input's gradient folded back onto the pixels each pad copied."""
    (ph, pw), (h, w) = padding, x_shape[1:3]
    if mode == "zeros" or (not ph and not pw):
        return grad[:, ph : ph + h, pw : pw + w, :]
    numpy_mode = PADDING_MODES[mode]
    rows = np.pad(np.arange(h), ph, mode=numpy_mode)  # type: ignore[call-overload]  # source row of each padded row
    cols = np.pad(np.arange(w), pw, mode=numpy_mode)  # type: ignore[call-overload]
    folded = np.zeros((grad.shape[0], h, grad.shape[2], grad.shape[3]), grad.dtype)
    np.add.at(folded, (slice(None), rows), grad)  # type: ignore[arg-type]
    out = np.zeros(x_shape, grad.dtype)
    np.add.at(out, (slice(None), slice(None), cols), folded)  # type: ignore[arg-type]
    return out


def windows(
    xp: Array,
    kernel: Tuple[int, int],
    stride: Tuple[int, int],
    out_hw: Tuple[int, int],
    dilation: Tuple[int, int] = (1, 1),
) -> Array:
    """A read-only view ``(N, Ho, Wo, kh, kw, C)`` of every window of the padded input (no copy)."""
    n, _, _, c = xp.shape
    s_n, s_h, s_w, s_c = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp,
        shape=(n, out_hw[0], out_hw[1], kernel[0], kernel[1], c),
        strides=(s_n, s_h * stride[0], s_w * stride[1], s_h * dilation[0], s_w * dilation[1], s_c),
        writeable=False,
    )


def im2col(
    x: Array,
    kernel: Tuple[int, int],
    stride: Tuple[int, int],
    padding: Tuple[int, int],
    out: Optional[Array] = None,
    dilation: Tuple[int, int] = (1, 1),
    mode: str = "zeros",
) -> Array:
    """Every window of ``x`` ``(N, H, W, C)`` as one row: ``(N * Ho * Wo, kh * kw * C)``.

    In channels-last the rows come out in the order the input is stored, so a convolution is
    this copy and one matrix product, with no transposes. ``out`` is a buffer to reuse.
    """
    xp = pad_hw(x, padding, mode=mode)
    n, c = x.shape[0], x.shape[3]
    ho = output_size(x.shape[1], kernel[0], stride[0], padding[0], dilation[0])
    wo = output_size(x.shape[2], kernel[1], stride[1], padding[1], dilation[1])
    shape = (n, ho, wo, kernel[0], kernel[1], c)
    cols = (
        out.reshape(shape)
        if out is not None and out.size == np.prod(shape) and out.dtype == x.dtype
        else np.empty(shape, x.dtype)
    )
    view = windows(xp, kernel, stride, (ho, wo), dilation)
    for_ranges(n, lambda s, e: np.copyto(cols[s:e], view[s:e]), cols.size)
    return cols.reshape(n * ho * wo, kernel[0] * kernel[1] * c)


#: The im2col rows a thread copies and multiplies at a time: about 1 MB, so they are still in the cache
#: when the product reads them (a batch's whole im2col matrix is 9 times the input, and goes to memory).
BLOCK_BYTES = 1 << 20


def _blocks(
    first: int, last: int, out_hw: Tuple[int, int], row_bytes: int, weight_bytes: int
) -> List[Tuple[int, int, int, int]]:
    """Images ``first:last`` in blocks ``(i0, i1, r0, r1)`` of about `BLOCK_BYTES` of im2col rows (or of
    the weight's size, when larger: each block's product reads the whole weight): several whole
    images, or output rows ``r0:r1`` of one large image."""
    ho, wo = out_hw
    per_image, block = ho * wo * row_bytes, max(BLOCK_BYTES, weight_bytes)
    if per_image <= block:
        step = max(1, block // per_image)
        return [(i, min(i + step, last), 0, ho) for i in range(first, last, step)]
    rows = -(-ho // -(-per_image // block))  # the image's rows in even parts of at most about a block
    return [(i, i + 1, r, min(r + rows, ho)) for i in range(first, last) for r in range(0, ho, rows)]


def _im2col_blocks(
    view: Array, first: int, last: int, out_hw: Tuple[int, int], weight_bytes: int
) -> Iterator[Tuple[int, Array]]:
    """Images ``first:last`` of a `windows` view as blocks of im2col rows (see `_blocks`): each block's
    first output row and the rows themselves, copied into one contiguous array."""
    rows_k = view.shape[3] * view.shape[4] * view.shape[5]
    for i0, i1, r0, r1 in _blocks(first, last, out_hw, rows_k * view.itemsize, weight_bytes):
        start = (i0 * out_hw[0] + r0) * out_hw[1]
        yield start, np.ascontiguousarray(view[i0:i1, r0:r1]).reshape(-1, rows_k)


def conv2d(
    xp: Array,
    weight_rows: Array,
    kernel: Tuple[int, int],
    stride: Tuple[int, int],
    out_hw: Tuple[int, int],
    dilation: Tuple[int, int] = (1, 1),
    bias: Optional[Array] = None,
    then: Optional[Callable[[Array, slice], None]] = None,
) -> Array:
    """A convolution of the padded ``xp`` ``(N, Hp, Wp, C)`` as rows ``(N * Ho * Wo, out)``: im2col and one
    product with ``weight_rows`` ``(kh * kw * C, out)``, block by block, the blocks over the threads.
    ``then(rows, where)``, if given, finishes each thread's output rows ``y[where]`` in place, on that
    thread, while they are still in the cache (`nnlayers.nn.fusion`: a shift, a residual sum, a ReLU)."""
    view = windows(xp, kernel, stride, out_hw, dilation)
    per_image = out_hw[0] * out_hw[1]
    y = np.empty((len(xp) * per_image, weight_rows.shape[1]), np.result_type(xp, weight_rows))

    def images(first: int, last: int) -> None:
        for start, cols in _im2col_blocks(view, first, last, out_hw, weight_rows.nbytes):
            block = y[start : start + len(cols)]
            np.matmul(cols, weight_rows, out=block)
            if bias is not None:
                block += bias
        if then is not None:
            where = slice(first * per_image, last * per_image)
            then(y[where], where)

    for_ranges(len(xp), images, y.size * weight_rows.shape[0] // 4)
    return y


def conv2d_weight_grad(
    xp: Array,
    grad: Array,
    kernel: Tuple[int, int],
    stride: Tuple[int, int],
    out_hw: Tuple[int, int],
    dilation: Tuple[int, int] = (1, 1),
) -> Array:
    """``im2col(x).T @ grad`` ``(kh * kw * C, out)``, the weight gradient, block by block (the im2col
    rows made again, in the cache, instead of kept from the forward); each thread's sum added in order."""
    view = windows(xp, kernel, stride, out_hw, dilation)
    rows_k = kernel[0] * kernel[1] * xp.shape[3]

    def images(first: int, last: int) -> Array:
        total = np.zeros((rows_k, grad.shape[1]), grad.dtype)
        for start, cols in _im2col_blocks(view, first, last, out_hw, total.nbytes):
            total += cols.T @ grad[start : start + len(cols)]
        return total

    return row_sums(len(xp), images, grad.size * rows_k // 4)


def conv_input_grad(
    grad: Array,
    weight: Array,
    x_shape: Tuple[int, ...],
    stride: Tuple[int, int],
    padding: Tuple[int, int],
    dilation: Tuple[int, int] = (1, 1),
    groups: int = 1,
    mode: str = "zeros",
) -> Array:
    """The gradient of a convolution's input: each kernel offset's product added where it came from.

    ``grad`` is the output gradient as rows ``(N * Ho * Wo, out)``, ``weight`` is ``(out, in / groups,
    kh, kw)``. For every offset ``(i, j)`` one product ``grad @ weight[:, :, i, j]`` (rows of ``in``
    values, contiguous; per group with ``groups``) is added to the input pixels that offset read: the
    adjoint of `im2col`, without building its ``kh * kw`` times larger matrix.
    """
    n, h, w, c = x_shape
    out_channels, per_group, kh, kw = weight.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    ho, wo = output_size(h, kh, sh, ph, dh), output_size(w, kw, sw, pw, dw)
    back = (dh * (kh - 1) - ph, dw * (kw - 1) - pw)
    if groups == 1 and stride == (1, 1) and mode == "zeros" and min(back) >= 0:
        # with stride 1 the adjoint is itself a convolution: of the padded gradient, with the kernel
        # flipped and its in and out swapped, in cache-sized blocks as the forward
        flipped = weight[:, :, ::-1, ::-1].transpose(2, 3, 0, 1).reshape(kh * kw * out_channels, c)
        padded = pad_hw(grad.reshape(n, ho, wo, out_channels), back)
        return conv2d(padded, np.ascontiguousarray(flipped), (kh, kw), (1, 1), (h, w), dilation).reshape(x_shape)
    dxp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), grad.dtype)
    pixels = ho * wo
    if groups == 1:  # each block's share of every offset in one product, added back while in the cache
        weight_all = weight.transpose(0, 2, 3, 1).reshape(out_channels, kh * kw * c)

        def blocks(first: int, last: int) -> None:  # whole images per thread: no two threads add to one pixel
            for i0, i1, r0, r1 in _blocks(first, last, (ho, wo), kh * kw * c * grad.itemsize, weight_all.nbytes):
                start = i0 * pixels + r0 * wo
                rows = grad[start : start + (i1 - i0) * (r1 - r0) * wo]
                part = (rows @ weight_all).reshape(i1 - i0, r1 - r0, wo, kh, kw, c)
                for i in range(kh):
                    for j in range(kw):
                        y0, x0 = i * dh + r0 * sh, j * dw
                        dxp[i0:i1, y0 : y0 + sh * (r1 - r0) : sh, x0 : x0 + sw * wo : sw, :] += part[:, :, :, i, j]

        for_ranges(n, blocks, grad.size * kh * kw * (1 + 2 * c // 8))
        return unpad_hw(dxp, padding, x_shape, mode)

    def images(first: int, last: int) -> None:  # a range of images, on one thread
        rows = grad[first * pixels : last * pixels]
        by_group = rows.reshape(-1, groups, out_channels // groups)
        for i in range(kh):
            for j in range(kw):
                w_ij = weight[:, :, i, j].reshape(groups, out_channels // groups, per_group)
                part = np.einsum("rgo,goc->rgc", by_group, w_ij)  # each group's outputs to its own inputs
                y0, x0 = i * dh, j * dw
                target = dxp[first:last, y0 : y0 + sh * ho : sh, x0 : x0 + sw * wo : sw, :]
                target += part.reshape(last - first, ho, wo, c)

    for_ranges(n, images, grad.size * kh * kw * (1 + 2 * c // 8))
    return unpad_hw(dxp, padding, x_shape, mode)


def attention(q: Array, k: Array, v: Array, scale: float, mask: Optional[Array] = None) -> Tuple[Array, Array]:
    """Scaled dot-product attention on ``(..., L, d)`` queries and ``(..., S, d)`` keys and values.

    ``P = softmax(q k^T * scale + mask)`` over the keys, and the output ``P v``: each query's
    average of the values, weighted by how well its key matches. ``mask`` is added to the scores
    (``-inf`` where a query must not look). Returns ``(output, P)``; `attention_backward` takes ``P``.
    """
    scores = q @ np.swapaxes(k, -1, -2)
    scores *= scores.dtype.type(scale)
    if mask is not None:
        mask = np.asarray(mask)
        fits = mask.dtype == scores.dtype and np.broadcast_shapes(mask.shape, scores.shape) == scores.shape
        scores = np.add(scores, mask, out=scores if fits else None)
    scores -= scores.max(axis=-1, keepdims=True)
    p = _normalized_exp_(scores, axis=-1)  # the softmax, in the scores' memory
    return p @ v, p


def attention_backward(
    grad_out: Array,
    q: Array,
    k: Array,
    v: Array,
    p: Array,
    scale: float,
    kept: Optional[Array] = None,
    grad_weights: Optional[Array] = None,
) -> Tuple[Array, Array, Array]:
    """The gradients of `attention`'s ``q``, ``k`` and ``v`` from its output's.

    ``kept``: the scaled dropout mask that multiplied ``P`` before ``P v`` (or ``None``);
    ``grad_weights``: a gradient of the weights ``P`` themselves (after that dropout), where they are
    used too. The softmax's backward is ``dS = P * (dP - sum(dP * P))`` over the keys: a row of
    weights sums to 1, so raising one weight lowers the others.
    """
    p_used = p if kept is None else p * kept
    grad_v = np.swapaxes(p_used, -1, -2) @ grad_out  # out = P v
    grad_p = grad_out @ np.swapaxes(v, -1, -2)
    if grad_weights is not None:
        grad_p = grad_p + grad_weights
    if kept is not None:
        grad_p *= kept
    grad_p -= np.einsum("...s,...s->...", grad_p, p)[..., None]  # the softmax's backward, in grad_p's memory:
    grad_p *= p  # dS = P * (dP - sum(dP * P))
    grad_p *= grad_p.dtype.type(scale)
    return grad_p @ k, np.swapaxes(grad_p, -1, -2) @ q, grad_v


def causal_mask(length: int, source: Optional[int] = None, dtype: DTypeLike = np.float32) -> Array:
    """``(L, S)``: 0 where query ``i`` may look at key ``j <= i``, ``-inf`` above the diagonal."""
    source = length if source is None else source
    return np.triu(np.full((length, source), -np.inf, dtype), k=1)


def scaled_dot_product_attention(
    query: Array,
    key: Array,
    value: Array,
    attn_mask: Optional[Array] = None,
    is_causal: bool = False,
    scale: Optional[float] = None,
) -> Array:
    """``softmax(query key^T / sqrt(d) + mask) value``, as ``torch.nn.functional.scaled_dot_product_attention``.

    Args:
        query: ``(..., L, d)``; key and value ``(..., S, d)`` (value's last axis may differ).
        attn_mask: Broadcast to ``(..., L, S)``: a boolean mask (True where a query **may** look,
            PyTorch's rule for this function) or a float one added to the scores.
        is_causal: Query ``i`` looks at keys ``0..i`` only.
        scale: The scores' factor, ``1 / sqrt(d)`` by default.

    Examples:
        >>> q = np.array([[[1.0, 0.0], [0.0, 1.0]]])
        >>> scaled_dot_product_attention(q, q, np.array([[[1.0], [3.0]]]), is_causal=True).round(3)
        array([[[1.  ],
                [2.34]]])
    """
    query, key, value = (np.asarray(a) for a in (query, key, value))
    scale = 1.0 / np.sqrt(query.shape[-1]) if scale is None else float(scale)
    mask = None
    if attn_mask is not None:
        attn_mask = np.asarray(attn_mask)
        mask = np.where(attn_mask, 0.0, -np.inf).astype(query.dtype) if attn_mask.dtype == np.bool_ else attn_mask
    if is_causal:
        causal = causal_mask(query.shape[-2], key.shape[-2], query.dtype)
        mask = causal if mask is None else mask + causal
    return attention(query, key, value, scale, mask)[0]
