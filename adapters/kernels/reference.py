"""Plain-torch reference of the sparse-plus-low-rank linear layer.

y = x·Wᵀ + bias + s·(x·Aᵀ)·Bᵀ + x·Sᵀ, with S given as (index, values) on a fixed support.

Two forms live here:
- :func:`sparse_lora_linear_reference` is built from differentiable torch ops only; in float64 it is the
  test oracle (and what ``gradcheck`` checks).
- :func:`reference_forward` / :func:`reference_backward` are the same maths with the gradients written
  out by hand; they are the CPU path of the custom op and mirror what the Triton kernels compute.

The sparse term is always a gather/scatter over the support (never a dense S or a dense dS), done in
chunks of the support so that the (tokens x chunk) temporaries stay bounded for large nnz.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Upper bound on elements of one (tokens x nnz-chunk) temporary of the sparse term.
_CHUNK_ELEMENTS = 1 << 22


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (oracle); everything else accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _chunk_len(n_tokens: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(1, n_tokens))


def sparse_lora_linear_reference(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> Tensor:
    """Autograd-differentiable reference; computes in float32 (float64 for float64 ``x``)."""
    acc = accumulation_dtype(x.dtype)
    lead, d_in = x.shape[:-1], x.shape[-1]
    x2 = x.reshape(-1, d_in).to(acc)
    y = x2 @ weight.to(acc).t()
    if bias is not None:
        y = y + bias.to(acc)
    if lora_A is not None and lora_B is not None:
        y = y + scaling * ((x2 @ lora_A.to(acc).t()) @ lora_B.to(acc).t())
    if sparse_index is not None and sparse_values is not None and sparse_values.numel() > 0:
        rows, cols = sparse_index[0], sparse_index[1]
        vals = sparse_values.to(acc)
        step = _chunk_len(x2.shape[0])
        for start in range(0, vals.numel(), step):
            sl = slice(start, start + step)
            # out-of-place index_add keeps autograd aware of both operands
            y = y.index_add(1, rows[sl], x2[:, cols[sl]] * vals[sl])
    return y.to(x.dtype).reshape(*lead, weight.shape[0])


def reference_forward(
    x2: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Forward on a 2-D ``x2`` (tokens, in). Returns ``(y, v)`` with ``v = x2·Aᵀ`` kept in the
    accumulation dtype for the backward (an empty tensor when there is no LoRA part)."""
    acc = accumulation_dtype(x2.dtype)
    xa = x2.to(acc)
    y = xa @ weight.to(acc).t()
    if bias is not None:
        y += bias.to(acc)
    if lora_A is not None and lora_B is not None:
        v = xa @ lora_A.to(acc).t()
        y += scaling * (v @ lora_B.to(acc).t())
    else:
        v = xa.new_empty(0)
    if sparse_index is not None and sparse_values is not None:
        vals = sparse_values.to(acc)
        rows, cols = sparse_index[0], sparse_index[1]
        step = _chunk_len(xa.shape[0])
        for start in range(0, vals.numel(), step):
            sl = slice(start, start + step)
            y.index_add_(1, rows[sl], xa[:, cols[sl]] * vals[sl])
    return y.to(x2.dtype), v


def reference_backward(
    dy: Tensor,
    x2: Tensor,
    weight: Tensor,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
    v: Tensor,
    need_bias: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """Gradients ``(dx, dA, dB, dvalues, dbias)`` for a 2-D ``dy`` (tokens, out).

    Bracketed so that nothing (out, in)-sized is formed: g = s·dy·B (tokens x r), dA = gᵀ·x,
    dB = s·dyᵀ·v, dvalues[k] = Σ_t dy[t, row_k]·x[t, col_k].
    """
    acc = accumulation_dtype(x2.dtype)
    dya, xa = dy.to(acc), x2.to(acc)
    dx = dya @ weight.to(acc)
    d_a = d_b = d_vals = d_bias = None
    if lora_A is not None and lora_B is not None:
        g = scaling * (dya @ lora_B.to(acc))
        dx += g @ lora_A.to(acc)
        d_a = (g.t() @ xa).to(lora_A.dtype)
        d_b = (scaling * (dya.t() @ v.to(acc))).to(lora_B.dtype)
    if sparse_index is not None and sparse_values is not None:
        vals = sparse_values.to(acc)
        rows, cols = sparse_index[0], sparse_index[1]
        d_vals_acc = torch.empty_like(vals)
        step = _chunk_len(xa.shape[0])
        for start in range(0, vals.numel(), step):
            sl = slice(start, start + step)
            dy_g = dya[:, rows[sl]]
            d_vals_acc[sl] = (dy_g * xa[:, cols[sl]]).sum(0)
            dx.index_add_(1, cols[sl], dy_g * vals[sl])
        d_vals = d_vals_acc.to(sparse_values.dtype)
    if need_bias:
        d_bias = dya.sum(0)  # cast to the bias dtype by the caller
    return dx.to(x2.dtype), d_a, d_b, d_vals, d_bias
