"""The public functional op ``sparse_lora_linear`` and its ``torch.library`` registration.

Forward and backward are two custom ops (``zoo::sparse_lora_forward`` / ``zoo::sparse_lora_backward``)
with fake implementations, tied together by ``register_autograd``; torch.compile therefore sees two
opaque nodes instead of tracing Triton launches. Each call runs the path :mod:`.dispatch` picks for it
(on CUDA the fastest of the Triton kernels and the cuBLAS compositions for its shape, rank and support;
on CPU the plain-torch reference, or the Triton kernels under ``TRITON_INTERPRET=1``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import composed, dispatch, reference
from .dispatch import backend_for, triton_interpreting  # noqa: F401  (public names)


def _forward_impl(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> tuple[Tensor, Tensor]:
    args = (x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values)
    return dispatch.forward(dispatch.choose(*args), *args)


def _backward_impl(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
    v: Tensor,
    need_bias: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    # inside the custom op (torch.compile): the same key as the forward's, so the same (cached) path
    path = dispatch.choose(x, weight, None, lora_A, lora_B, scaling, sparse_index, sparse_values)
    return dispatch.backward(
        path, dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias
    )


@torch.library.custom_op("zoo::sparse_lora_forward", mutates_args=())
def _forward_op(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> tuple[Tensor, Tensor]:
    y, v = _forward_impl(x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values)
    return y, v.to(reference.accumulation_dtype(x.dtype))  # the dtype the fake promises


@_forward_op.register_fake
def _forward_fake(x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values):
    y = x.new_empty((x.shape[0], weight.shape[0]))
    acc = reference.accumulation_dtype(x.dtype)
    if lora_A is not None and lora_B is not None:
        v = x.new_empty((x.shape[0], lora_A.shape[0]), dtype=acc)
    else:
        v = x.new_empty((0,), dtype=acc)
    return y, v


@torch.library.custom_op("zoo::sparse_lora_backward", mutates_args=())
def _backward_op(
    dy: Tensor,
    x: Tensor,
    weight: Tensor,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
    v: Tensor,
    need_bias: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Returns ``(dx, dA, dB, dvalues, dbias)``; absent parts come back as empty tensors because a
    custom op cannot return None."""
    grads = _backward_impl(dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias)
    # fresh empties: outputs of a custom op must not alias each other
    return tuple(x.new_empty(0) if g is None else g for g in grads)  # type: ignore[return-value]


@_backward_op.register_fake
def _backward_fake(dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias):
    lora = lora_A is not None and lora_B is not None
    sparse = sparse_index is not None and sparse_values is not None
    return (
        torch.empty_like(x),
        torch.empty_like(lora_A) if lora else x.new_empty(0),
        torch.empty_like(lora_B) if lora else x.new_empty(0),
        torch.empty_like(sparse_values) if sparse else x.new_empty(0),
        dy.new_empty((dy.shape[1],), dtype=reference.accumulation_dtype(dy.dtype))
        if need_bias
        else x.new_empty(0),
    )


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values = inputs
    ctx.scaling = scaling
    ctx.bias_dtype = None if bias is None else bias.dtype
    ctx.save_for_backward(x, weight, lora_A, lora_B, sparse_index, sparse_values, output[1])


def _backward(ctx, dy: Tensor, _dv: Tensor):
    x, weight, lora_A, lora_B, sparse_index, sparse_values, v = ctx.saved_tensors
    need_bias = ctx.bias_dtype is not None and ctx.needs_input_grad[2]
    dx, d_a, d_b, d_vals, d_bias = _backward_op(
        dy.contiguous(), x, weight, lora_A, lora_B, ctx.scaling, sparse_index, sparse_values, v, need_bias
    )
    lora = lora_A is not None and lora_B is not None
    sparse = sparse_index is not None and sparse_values is not None
    return (
        dx,
        None,
        d_bias.to(ctx.bias_dtype) if need_bias else None,
        d_a if lora else None,
        d_b if lora else None,
        None,
        None,
        d_vals if sparse else None,
    )


torch.library.register_autograd("zoo::sparse_lora_forward", _backward, setup_context=_setup_context)


class _EagerSparseLoRA(torch.autograd.Function):
    """The same forward/backward without the custom-op dispatch layers, whose Python overhead (a few
    hundred microseconds per step) is as large as the GPU time of a whole layer. Used outside
    torch.compile; under compile the registered custom ops are traced instead."""

    @staticmethod
    def forward(ctx, x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values, path):
        # `path` is the caller's pick: choosing it again here and in the backward would repeat host
        # work on every call, which is what bounds these layers on a GPU
        y, v = dispatch.forward(path, x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values)
        ctx.path = path
        ctx.scaling = scaling
        ctx.bias_dtype = None if bias is None else bias.dtype
        ctx.save_for_backward(x, weight, lora_A, lora_B, sparse_index, sparse_values, v)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, lora_A, lora_B, sparse_index, sparse_values, v = ctx.saved_tensors
        need_bias = ctx.bias_dtype is not None and ctx.needs_input_grad[2]
        dx, d_a, d_b, d_vals, d_bias = dispatch.backward(
            ctx.path,
            dy.contiguous(),
            x,
            weight,
            lora_A,
            lora_B,
            ctx.scaling,
            sparse_index,
            sparse_values,
            v,
            need_bias,
        )
        if d_bias is not None:
            d_bias = d_bias.to(ctx.bias_dtype)
        return dx, None, d_bias, d_a, d_b, None, None, d_vals, None


def _check_shapes(x, weight, bias, lora_A, lora_B, sparse_index, sparse_values) -> None:
    if weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"x (..., {x.shape[-1]}) does not match weight {tuple(weight.shape)} (out, in)")
    d_out, d_in = weight.shape
    if bias is not None and bias.shape != (d_out,):
        raise ValueError(f"bias must have shape ({d_out},), got {tuple(bias.shape)}")
    if (lora_A is None) != (lora_B is None):
        raise ValueError("lora_A and lora_B must be given together (or both None for sparse-only)")
    if lora_A is not None:
        r = lora_A.shape[0]
        if lora_A.shape != (r, d_in) or lora_B.shape != (d_out, r):
            raise ValueError(
                f"LoRA factors must be A (r, {d_in}) and B ({d_out}, r); got {tuple(lora_A.shape)}, "
                f"{tuple(lora_B.shape)}"
            )
    if (sparse_index is None) != (sparse_values is None):
        raise ValueError("sparse_index and sparse_values must be given together (or both None)")
    if sparse_index is not None:
        if sparse_index.dim() != 2 or sparse_index.shape[0] != 2 or sparse_index.dtype != torch.int64:
            raise ValueError(
                f"sparse_index must be int64 of shape (2, nnz), got {sparse_index.dtype} "
                f"{tuple(sparse_index.shape)}"
            )
        if sparse_values.shape != (sparse_index.shape[1],):
            raise ValueError(
                f"sparse_values must have shape ({sparse_index.shape[1]},), got {tuple(sparse_values.shape)}"
            )


def sparse_lora_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> Tensor:
    """y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ + x·Sᵀ, with S the sparse matrix (sparse_index, sparse_values).

    ``x`` is (..., in); ``weight`` (out, in) is frozen; ``lora_A`` (r, in) / ``lora_B`` (out, r) may both
    be None (sparse only); ``sparse_index`` (2, nnz) int64 rows/cols and ``sparse_values`` (nnz,) may both
    be None (plain LoRA), and nnz may be 0. Differentiable in x, lora_A, lora_B, sparse_values and bias.
    The support is assumed duplicate-free (duplicates are summed, as a COO matrix would). S stays in its
    own dtype (normally fp32) and is accumulated in fp32, never folded into a low-precision W.
    """
    _check_shapes(x, weight, bias, lora_A, lora_B, sparse_index, sparse_values)
    if weight.requires_grad and torch.is_grad_enabled():
        raise ValueError("weight must be frozen (requires_grad=False): sparse_lora_linear computes no dW")
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        # Autocast the dense operands like F.linear would, but keep S in its own (fp32) dtype.
        dt = torch.get_autocast_dtype(device_type)
        x, weight = x.to(dt), weight.to(dt)
        bias = None if bias is None else bias.to(dt)
        lora_A = None if lora_A is None else lora_A.to(dt)
        lora_B = None if lora_B is None else lora_B.to(dt)
    elif weight.dtype != x.dtype:
        weight = weight.to(x.dtype)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, x.shape[-1]).contiguous()
    y = linear_2d(x2, weight, bias, lora_A, lora_B, float(scaling), sparse_index, sparse_values)
    return y.reshape(*lead, weight.shape[0])


def linear_2d(
    x2: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> Tensor:
    """One call on a 2-D ``x2`` whose dense operands share its dtype, run on the path the dispatcher
    picks (the dispatcher also times candidates through this function)."""
    args = (x2, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values)
    path = dispatch.choose(*args)
    if path == "lowrank":  # the support joins the LoRA factors; the rank-(r + N) call picks its own path
        a, b = composed.lowrank_factors(
            lora_A, lora_B, scaling, sparse_index, sparse_values, weight.shape[0], weight.shape[1], x2.dtype
        )
        y = linear_2d(x2, weight, bias, a, b, 1.0, None, None)
        if not torch.compiler.is_compiling():
            dispatch.last_path = f"lowrank/{dispatch.last_path}"
        return y
    if not torch.compiler.is_compiling():
        dispatch.last_path = path
    if path == "autograd":  # differentiable ops: autograd runs the backward in C++
        return composed.autograd_lora(x2, weight, bias, lora_A, lora_B, scaling)
    if torch.compiler.is_compiling():
        return _forward_op(*args)[0]
    return _EagerSparseLoRA.apply(*args, path)
