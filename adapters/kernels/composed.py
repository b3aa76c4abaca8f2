"""The cuBLAS-composed sparse-LoRA paths: the same maths as the Triton kernels, as a few library calls.

Why they exist: at training shapes an H200 finishes a layer's GPU work in about a millisecond, and on a
virtualised host each launch costs tens of microseconds, so a path of many launches is bound by the
host. These paths issue few launches and keep every large product in cuBLAS:

forward   v = x·Aᵀ                      (T x r; reads x once)
          z = s·v·Bᵀ (+ bias)           (written once)
          y = x·Wᵀ + z                  (the base product reads z in its epilogue: beta = 1)
backward  g = dy·B                      (T x r; reads dy)
          dx = dy·W + s·g·A             (likewise: the low-rank part first, the base product onto it)
          dA = s·gᵀ·x,  dB = s·dyᵀ·v    (small outputs, the token dimension reduced by cuBLAS)

The LoRA part runs either through a hand-written backward (:func:`lora_forward` / :func:`lora_backward`,
path ``cublas``) or as differentiable ops (:func:`autograd_lora`, path ``autograd``), whose backward
autograd's C++ engine runs without Python; the dispatcher times both.

The sparse residual S keeps its own precision (it is never folded into a bf16 W, where an entry below
one ulp of W would vanish), in one of two forms:

- ``lowrank`` (DSEE's 16-128 entries per matrix, up to :data:`LOWRANK_MAX_NNZ`): S = Σ_k val_k·e_row·e_colᵀ
  is N more rank-one terms, so it joins the LoRA factors: A' = [A; diag(val)·E_col], B' = [s·B, E_row]
  (:func:`lowrank_factors`, differentiable, so autograd returns dA, dB and dvalues from dA', dB').
  The layer then costs what a LoRA of rank r + N costs: the same passes over x, dy and y.
- ``split`` (larger supports): S as a dense matrix in the compute dtype, one extra product each way
  (y += x·Sᵀ, dx += dy·S) and dvalues picked from dyᵀ·x computed a block of rows at a time, so the full
  (out x in) gradient never exists at once. Nothing waits on the host (no ``.item()``/``.tolist()``).

Every function here is plain torch, so the paths also run (and are tested) on CPU.
"""

from __future__ import annotations

import torch
from torch import Tensor

# Past this many support entries the rank-(r + N) products cost more than the split form's.
LOWRANK_MAX_NNZ = 4096
# Upper bound on elements of one block of dyᵀ·x in the split form's dvalues.
_BLOCK_ELEMENTS = 1 << 26
_ZEROS: dict[tuple, Tensor] = {}


def _zero(like: Tensor) -> Tensor:
    """A 0-d zero to pass as the ignored input of ``addmm(..., beta=0)`` (cached: no launch per call)."""
    key = (like.device, like.dtype)
    if key not in _ZEROS:
        _ZEROS[key] = torch.zeros((), device=like.device, dtype=like.dtype)
    return _ZEROS[key]


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    return t if t.dtype == dtype else t.to(dtype)


def lowrank_factors(
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor,
    sparse_values: Tensor,
    d_out: int,
    d_in: int,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """(A', B') with s·B·A + S = B'·A' (see the module docstring); differentiable in A, B and values."""
    rows, cols = sparse_index[0], sparse_index[1]
    n = rows.shape[0]
    pick = torch.arange(n, device=rows.device)
    a_s = torch.zeros(n, d_in, device=sparse_values.device, dtype=dtype)
    a_s = a_s.index_put((pick, cols), _as(sparse_values, dtype), accumulate=True)
    b_s = torch.zeros(d_out, n, device=sparse_values.device, dtype=dtype)
    b_s[rows, pick] = 1
    if lora_A is None or lora_B is None:
        return a_s, b_s
    return torch.cat([_as(lora_A, dtype), a_s]), torch.cat([_as(lora_B, dtype) * scaling, b_s], dim=1)


def lora_forward(
    x: Tensor, weight: Tensor, bias: Tensor | None, lora_A, lora_B, scaling: float
) -> tuple[Tensor, Tensor]:
    """``(y, v)``; ``v = x·Aᵀ`` is kept for the backward (empty without LoRA)."""
    dt = x.dtype
    w_t = _as(weight, dt).t()
    bias = None if bias is None else _as(bias, dt)
    if lora_A is None or lora_B is None:
        y = x @ w_t if bias is None else torch.addmm(bias, x, w_t)
        return y, x.new_empty(0)
    v = x @ _as(lora_A, dt).t()
    z = torch.addmm(
        _zero(x) if bias is None else bias,
        v,
        _as(lora_B, dt).t(),
        beta=0 if bias is None else 1,
        alpha=scaling,
    )
    return torch.addmm(z, x, w_t), v


def autograd_lora(x: Tensor, weight: Tensor, bias: Tensor | None, lora_A, lora_B, scaling: float) -> Tensor:
    """The same y from differentiable ops only (nothing in place), for autograd to differentiate."""
    return lora_forward(x, weight, bias, lora_A, lora_B, scaling)[0]


def lora_backward(
    dy: Tensor, x: Tensor, weight: Tensor, lora_A, lora_B, scaling: float, v: Tensor
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """``(dx, dA, dB)`` (dA, dB None without LoRA)."""
    dt = x.dtype
    w = _as(weight, dt)
    if lora_A is None or lora_B is None:
        return dy @ w, None, None
    a, zero = _as(lora_A, dt), _zero(x)
    g = dy @ _as(lora_B, dt)
    dx = torch.addmm(torch.addmm(zero, g, a, beta=0, alpha=scaling), dy, w)
    d_a = torch.addmm(zero, g.t(), x, beta=0, alpha=scaling)
    d_b = torch.addmm(zero, dy.t(), _as(v, dt), beta=0, alpha=scaling)
    return dx, _as(d_a, lora_A.dtype), _as(d_b, lora_B.dtype)


def _dense_s(index: Tensor, values: Tensor, shape: tuple[int, int], dtype: torch.dtype) -> Tensor:
    s = torch.zeros(shape, device=values.device, dtype=dtype)
    return s.index_put_((index[0], index[1]), values.to(dtype), accumulate=True)


def forward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
    split: bool,
) -> tuple[Tensor, Tensor]:
    """``(y, v)`` of the ``cublas`` path (``split``: with S as a dense product)."""
    y, v = lora_forward(x, weight, bias, lora_A, lora_B, scaling)
    if split:
        y.addmm_(x, _dense_s(sparse_index, sparse_values, tuple(weight.shape), x.dtype).t())
    return y, v


def _dvalues_split(dy: Tensor, x: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """dvalues[k] = (dyᵀ·x)[row_k, col_k], from (dyᵀ·x) one block of rows at a time (no host sync)."""
    d_out, d_in = dy.shape[1], x.shape[1]
    block_rows = max(1, min(d_out, _BLOCK_ELEMENTS // max(1, d_in)))
    out = torch.zeros(rows.shape[0], device=x.device, dtype=torch.float32)
    for r0 in range(0, d_out, block_rows):
        block = dy[:, r0 : r0 + block_rows].t() @ x
        local = rows - r0
        inside = (local >= 0) & (local < block.shape[0])
        picked = block[local.clamp(0, block.shape[0] - 1), cols].float()
        out += torch.where(inside, picked, torch.zeros_like(picked))
    return out


def backward(
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
    split: bool,
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """``(dx, dA, dB, dvalues, dbias)`` of the ``cublas`` path; dbias in fp32 (the caller casts it)."""
    dy = _as(dy, x.dtype)
    dx, d_a, d_b = lora_backward(dy, x, weight, lora_A, lora_B, scaling, v)
    d_vals = d_bias = None
    if split:
        dx.addmm_(dy, _dense_s(sparse_index, sparse_values, tuple(weight.shape), x.dtype))
        d_vals = _dvalues_split(dy, x, sparse_index[0], sparse_index[1]).to(sparse_values.dtype)
    elif sparse_values is not None:
        d_vals = torch.zeros_like(sparse_values)
    if need_bias:
        d_bias = dy.sum(0, dtype=torch.float32)
    return dx, d_a, d_b, d_vals, d_bias
