"""Host side of the Triton sparse-LoRA path: support plans, launch configurations, forward/backward.

Passes (T tokens; U = one T x d activation read or write):

forward   shrink      v = x·Aᵀ (fp32)                                          reads x (1U)
          base        y = x·W'ᵀ (cuBLAS by default, or a Triton GEMM)
          epilogue    y += s·v·Bᵀ + bias (+ lo of W + S)   in place: 2U with cuBLAS, fused with Triton
          scatter     y[:, row] += Σ val·x[:, col]        tiny support only
backward  dy_pass     g = s·dy·B, partial dB and dbias                         reads dy (1U)
          base        dx = dy·W', then the epilogue dx += g·A (+ lo) and the scatter (+ dvalues)
          a_grad      dA = gᵀ·x                                                reads x (1U)

S is handled one of two ways, by support size:
- ``gather`` (tiny support, DSEE's 16-128 entries): a scatter kernel adds Σ val·x[:, col] into each
  touched column of y (and Σ val·dy[:, row] into dx, computing dvalues from the same dy gather), in fp32
  on CUDA cores. Exact: S stays fp32 and W is untouched.
- ``dense`` (larger supports): W' = W + S is formed as a compensated pair hi = round(W + S),
  lo = (W + S) - hi, so an S entry far below one ulp of W still reaches the output. hi replaces W in the
  base product; lo is multiplied by Triton on the occupied K blocks only, or by cuBLAS as a dense product
  when most tiles are occupied (DENSE_OCCUPANCY). dvalues come from a block SDDMM over occupied blocks,
  or from dyᵀ·x one block of rows at a time on cuBLAS; never a full dense dS.

Host overhead matters: at 8192 x 4096 x 4096 an H200 finishes a layer's GPU work (~0.9 ms) faster than
Python issues it, so launches are kept few and helpers avoid triton's constexpr wrappers.
"""

from __future__ import annotations

import functools
import os
import weakref
from dataclasses import dataclass, field

import torch
import triton
from torch import Tensor

from . import triton_kernels as K
from .dispatch import triton_interpreting

INTERPRET = triton_interpreting()  # the kernels were decorated under the same setting
_CACHE_LIMIT = 1024
# Tests set this to fill every buffer a kernel should write with NaN first, so an element a kernel
# forgets to write shows up instead of passing with whatever torch.empty happened to return.
POISON_OUTPUTS = False


def _alloc(*shape: int, like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    out = torch.empty(*shape, device=like.device, dtype=dtype or like.dtype)
    return out.fill_(float("nan")) if POISON_OUTPUTS else out


# ----------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class _Blocks:
    gemm: dict  # BM, BN, BK, GROUP_M (+ num_warps, num_stages on GPU)
    epilogue: dict  # config of the in-place epilogue kernel (base="cublas")
    shrink_bm: int
    shrink_bk: int
    dy_bm: int
    dy_bn: int
    a_grad_bt: int
    a_grad_bk: int
    sddmm_sb: int
    sddmm_bt: int
    bs: int
    scatter_bt: int
    warps: dict = field(default_factory=dict)


# Tiny blocks under the interpreter: CPU tests cover several tiles and ragged edges in seconds.
_INTERP_BLOCKS = _Blocks(
    gemm={"BM": 16, "BN": 32, "BK": 16, "GROUP_M": 2},
    epilogue={"BM": 16, "BN": 32, "BK": 16, "GROUP_M": 2},
    shrink_bm=16,
    shrink_bk=16,
    dy_bm=16,
    dy_bn=32,
    a_grad_bt=16,
    a_grad_bk=32,
    sddmm_sb=16,
    sddmm_bt=16,
    bs=16,
    scatter_bt=16,
)
# Hopper-class defaults (H100/H200); Ampere runs them too.
_GPU_BLOCKS = _Blocks(
    gemm={"BM": 128, "BN": 256, "BK": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 3},
    epilogue={"BM": 64, "BN": 256, "BK": 64, "GROUP_M": 8, "num_warps": 8, "num_stages": 3},
    shrink_bm=64,
    shrink_bk=128,
    dy_bm=64,
    dy_bn=128,
    a_grad_bt=64,
    a_grad_bk=128,
    sddmm_sb=128,
    sddmm_bt=64,
    bs=16,
    scatter_bt=128,
    warps={"shrink": (4, 3), "dy": (8, 3), "a_grad": (8, 3), "sddmm": (8, 3), "scatter": (4, 1)},
)
_GEMM_TUNING = [
    triton.Config({"BM": 128, "BN": 256, "BK": 64, "GROUP_M": 8}, num_warps=8, num_stages=3),
    triton.Config({"BM": 128, "BN": 128, "BK": 64, "GROUP_M": 8}, num_warps=8, num_stages=4),
    triton.Config({"BM": 128, "BN": 128, "BK": 64, "GROUP_M": 8}, num_warps=4, num_stages=4),
]
# Small on purpose: tuned once per (shape bucket, variant), a few configs keep first calls cheap.
_gemm_tuned = triton.autotune(configs=_GEMM_TUNING, key=["M_BUCKET", "N", "K", "HAS_LORA", "LO_B", "BR"])(
    K.gemm_kernel
)


def _blocks() -> _Blocks:
    return _INTERP_BLOCKS if INTERPRET else _GPU_BLOCKS


def _cdiv(a: int, b: int) -> int:
    # plain Python: triton.cdiv is a constexpr_function wrapper and costs microseconds per call
    return -(-a // b)


def _next_pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def _autotune() -> bool:
    return not INTERPRET and os.environ.get("ZOO_SPARSE_LORA_AUTOTUNE", "1") != "0"


def base_mode() -> str:
    """``"cublas"`` (default: cuBLAS base product + in-place Triton epilogue) or ``"triton"`` (one fused
    Triton GEMM). Measured on an H200 (8192 x 4096 x 4096 bf16), Triton's GEMM ran ~20% slower than
    cuBLAS, which costs more than the two extra passes over y of the epilogue kernel."""
    mode = os.environ.get("ZOO_SPARSE_LORA_BASE", "cublas")
    if mode not in ("triton", "cublas"):
        raise ValueError(f"ZOO_SPARSE_LORA_BASE must be 'triton' or 'cublas', got {mode!r}")
    return mode


def sparse_mode(nnz: int, d_out: int, d_in: int) -> str:
    """``"none"``, ``"gather"`` or ``"dense"`` (see the module docstring); ZOO_SPARSE_LORA_MODE overrides."""
    if nnz == 0:
        return "none"
    forced = os.environ.get("ZOO_SPARSE_LORA_MODE", "")
    if forced:
        if forced not in ("gather", "dense"):
            raise ValueError(f"ZOO_SPARSE_LORA_MODE must be 'gather' or 'dense', got {forced!r}")
        return forced
    # Gathers cost ~T·nnz scattered loads per pass; past about one entry per output column the
    # occupied-block GEMM work of the dense mode is cheaper.
    return "gather" if nnz <= max(256, min(d_out, d_in)) else "dense"


def _r_block(r: int) -> int:
    return min(max(16, _next_pow2(r)), 64)


def _precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"  # ignored for 16-bit operands


@functools.cache
def _num_sms(device: torch.device) -> int:
    if device.type != "cuda":
        return 2
    return torch.cuda.get_device_properties(device).multi_processor_count


# Above this fraction of occupied tiles, a block-sparse pass over S costs about as much as a dense one,
# and the dense one runs in cuBLAS.
DENSE_OCCUPANCY = 0.3


def _kw(name: str) -> dict:
    warps = _blocks().warps.get(name)
    return {} if warps is None else {"num_warps": warps[0], "num_stages": warps[1]}


# ------------------------------------------------------------------------------------- support plans
class SparsePlan:
    """Everything derived from a fixed support (sorted orders, tile pointers, occupancy); built once
    per index tensor and cached, so steady-state calls launch no sorting work."""

    def __init__(self, index: Tensor, d_out: int, d_in: int) -> None:
        self.d_out, self.d_in = d_out, d_in
        self.nnz = int(index.shape[1])
        rows, cols = index[0], index[1]
        self.rows32 = rows.to(torch.int32).contiguous()
        self.cols32 = cols.to(torch.int32).contiguous()
        self._rows, self._cols = rows, cols
        self._parts: dict[str, object] = {}

    def _by_output(self, out_coord: Tensor, in_coord: Tensor, n_out: int, n_in: int):
        """Entries in CSR order of ``out_coord``: (order, p, q, ptr per 16 outputs, distinct outputs,
        their entry ranges)."""
        order = torch.argsort(out_coord * n_in + in_coord)
        p = out_coord[order]
        starts = torch.arange(0, _cdiv(n_out, 16) + 1, device=p.device, dtype=torch.int64) * 16
        ptr = torch.searchsorted(p, starts).to(torch.int32)
        outs, counts = torch.unique_consecutive(p, return_counts=True)
        out_ptr = torch.zeros(outs.numel() + 1, device=p.device, dtype=torch.int64)
        out_ptr[1:] = counts.cumsum(0)
        return (
            order,
            p.to(torch.int32),
            in_coord[order].to(torch.int32),
            ptr,
            outs.to(torch.int32),
            out_ptr.to(torch.int32),
        )

    def forward_gather(self):
        """Entries in CSR order of rows of W, i.e. columns of y (forward scatter, row-chunked dvalues)."""
        if "fg" not in self._parts:
            self._parts["fg"] = self._by_output(self._rows, self._cols, self.d_out, self.d_in)
        return self._parts["fg"]

    def dx_gather(self):
        """Entries in CSR order of columns of W, i.e. columns of dx (backward scatter)."""
        if "dg" not in self._parts:
            self._parts["dg"] = self._by_output(self._cols, self._rows, self.d_in, self.d_out)
        return self._parts["dg"]

    def fold(self):
        """Unique linear positions (duplicates summed) and the 2-D prefix-sum occupancy table at 16 x 16
        granularity: table[i, j] = #entries with row < 16i and col < 16j."""
        if "fold" not in self._parts:
            lin = self._rows * self.d_in + self._cols
            unique, inverse = torch.unique(lin, return_inverse=True)
            n16_r, n16_c = _cdiv(self.d_out, 16), _cdiv(self.d_in, 16)
            counts = torch.zeros(n16_r * n16_c, device=lin.device, dtype=torch.int32)
            counts.index_add_(
                0,
                (self._rows // 16) * n16_c + self._cols // 16,
                torch.ones_like(self._rows, dtype=torch.int32),
            )
            table = torch.zeros(n16_r + 1, n16_c + 1, device=lin.device, dtype=torch.int32)
            table[1:, 1:] = counts.view(n16_r, n16_c).cumsum(0).cumsum(1)
            self._parts["fold"] = (unique, inverse, table.contiguous())
        return self._parts["fold"]

    def occupancy(self, tile_rows: int, tile_cols: int) -> float:
        """Fraction of (tile_rows x tile_cols) tiles of W that hold at least one entry (one sync, cached)."""
        key = f"occ{tile_rows}x{tile_cols}"
        if key not in self._parts:
            n_tc = _cdiv(self.d_in, tile_cols)
            tiles = torch.unique((self._rows // tile_rows) * n_tc + self._cols // tile_cols).numel()
            self._parts[key] = tiles / (_cdiv(self.d_out, tile_rows) * n_tc)
        return self._parts[key]

    def forward_gather_host_ptr(self) -> list[int]:
        if "fg_host" not in self._parts:
            self._parts["fg_host"] = self.forward_gather()[3].tolist()
        return self._parts["fg_host"]

    def sddmm(self, sb: int):
        """Entries grouped by (sb x sb) block: occupied block list, per-block ranges, local coords."""
        key = f"sddmm{sb}"
        if key not in self._parts:
            n_cb = _cdiv(self.d_in, sb)
            blk = (self._rows // sb) * n_cb + self._cols // sb
            order = torch.argsort(blk * (sb * sb) + (self._rows % sb) * sb + self._cols % sb)
            blk_sorted = blk[order]
            uniq, counts = torch.unique_consecutive(blk_sorted, return_counts=True)
            ptr = torch.zeros(uniq.numel() + 1, device=blk.device, dtype=torch.int64)
            ptr[1:] = counts.cumsum(0)
            self._parts[key] = (
                order,
                (uniq // n_cb).to(torch.int32),
                (uniq % n_cb).to(torch.int32),
                ptr.to(torch.int32),
                (self._rows[order] % sb).to(torch.int32),
                (self._cols[order] % sb).to(torch.int32),
            )
        return self._parts[key]


_PLANS: dict[int, tuple[weakref.ref, int, tuple, SparsePlan]] = {}


def plan_for(index: Tensor, d_out: int, d_in: int) -> SparsePlan:
    """Cached plan of ``index``; invalidated when the tensor dies or is modified in place."""
    key = id(index)
    sig = (tuple(index.shape), index.device, d_out, d_in)
    hit = _PLANS.get(key)
    if hit is not None and hit[0]() is index and hit[1] == index._version and hit[2] == sig:
        return hit[3]
    if len(_PLANS) >= _CACHE_LIMIT:
        for k in [k for k, v in _PLANS.items() if v[0]() is None]:
            del _PLANS[k]
        if len(_PLANS) >= _CACHE_LIMIT:
            _PLANS.clear()
    plan = SparsePlan(index, d_out, d_in)
    _PLANS[key] = (weakref.ref(index), index._version, sig, plan)
    return plan


def _fold_weight(weight: Tensor, plan: SparsePlan, values: Tensor) -> tuple[Tensor, Tensor | None]:
    """hi = round(W + S) and lo = (W + S) - hi on the support (lo is None in fp32, where W + S is exact
    enough on its own)."""
    unique, inverse, _ = plan.fold()
    s = torch.zeros(unique.numel(), device=weight.device, dtype=torch.float32).index_add_(
        0, inverse, values.float()
    )
    w_hi = weight.clone()
    flat = w_hi.view(-1)
    exact = flat[unique].float() + s
    hi = exact.to(weight.dtype)
    flat[unique] = hi
    if weight.dtype == torch.float32:
        return w_hi, None
    w_lo = torch.zeros_like(weight)
    w_lo.view(-1)[unique] = (exact - hi.float()).to(weight.dtype)
    return w_hi, w_lo


def _dvalues_by_row_chunks(dy: Tensor, x: Tensor, plan: SparsePlan) -> Tensor:
    """dvalues when S touches most tiles: (dyᵀ·x) one block of rows at a time on cuBLAS, and the support
    entries picked from it. At most a quarter of the (out, in) gradient exists at any moment."""
    order, p, q = plan.forward_gather()[:3]
    ptr = plan.forward_gather_host_ptr()
    d_out = dy.shape[1]
    rows_per_chunk = max(16, min(d_out // 4, (1 << 26) // max(1, x.shape[1])) // 16 * 16)
    picked = torch.empty(plan.nnz, device=x.device, dtype=torch.float32)
    for r0 in range(0, d_out, rows_per_chunk):
        r1 = min(r0 + rows_per_chunk, d_out)
        lo, hi = ptr[r0 // 16], ptr[_cdiv(r1, 16)]
        if lo == hi:
            continue
        block = dy[:, r0:r1].t() @ x
        picked[lo:hi] = block[(p[lo:hi] - r0).long(), q[lo:hi].long()].float()
    d_vals = torch.empty_like(picked)
    d_vals[order] = picked
    return d_vals


# ---------------------------------------------------------------------------------------- launchers
def _launch_gemm(
    *,
    a_op: Tensor,
    b_op: Tensor | None,
    b_lo: Tensor | None,
    c: Tensor,
    bias: Tensor | None,
    stride_bk: int,
    stride_bn: int,
    k_dim: int,
    lora: tuple[Tensor, Tensor, float, int, int] | None,
    occ: tuple[Tensor, int, int] | None,
    acc_from_c: bool,
) -> None:
    m, n = c.shape
    if acc_from_c and b_lo is None and lora is None and bias is None:
        return  # nothing to add to the cuBLAS product
    dummy = c  # never dereferenced when the matching flag is off
    if lora is not None:
        l_mat, r_mat, l_scale, stride_rr, stride_rn = lora
        r = l_mat.shape[1]
    else:
        l_mat, r_mat, l_scale, stride_rr, stride_rn, r = dummy, dummy, 0.0, 0, 0, 0
    occ_t, s_on, s_ok = occ if occ is not None else (dummy, 0, 0)
    n16_n, n16_k = _cdiv(n, 16), _cdiv(k_dim, 16)
    split = a_op.dtype != torch.float32
    args = (
        a_op,
        b_op if b_op is not None else dummy,
        b_lo if b_lo is not None else dummy,
        c,
        bias if bias is not None else dummy,
        l_mat,
        r_mat,
        float(l_scale),
        occ_t,
        s_on,
        s_ok,
        n16_n,
        n16_k,
        m,
        n,
        k_dim,
        r,
        min(_next_pow2(m), 16384),
        a_op.stride(0),
        stride_bk,
        stride_bn,
        c.stride(0),
        l_mat.stride(0) if lora else 0,
        stride_rr,
        stride_rn,
    )
    flags = dict(
        BR=_r_block(r),
        ACC_FROM_C=acc_from_c,
        DENSE_B=b_op is not None,
        LO_B=b_lo is not None,
        HAS_LORA=lora is not None,
        HAS_BIAS=bias is not None,
        SPLIT=split,
        PREC=_precision(a_op.dtype),
        UPCAST=INTERPRET,
    )

    def grid(meta):
        return (_cdiv(m, meta["BM"]) * _cdiv(n, meta["BN"]),)

    if acc_from_c or not _autotune():
        cfg = _blocks().epilogue if acc_from_c else _blocks().gemm
        K.gemm_kernel[grid](*args, **flags, **cfg)
    else:
        _gemm_tuned[grid](*args, **flags)


def _product(
    *,
    a_op: Tensor,
    w_main: Tensor,
    w_lo: Tensor | None,
    lo_dense: bool,
    n_cols: int,
    bias: Tensor | None,
    transpose_w: bool,
    lora,
    occ,
) -> Tensor:
    """a_op·W'ᵀ (forward, ``transpose_w``) or a_op·W' (dx) plus the epilogue, W' = w_main (+ w_lo).

    w_lo goes through cuBLAS as a dense product when most tiles hold support entries (``lo_dense``),
    otherwise through the Triton kernel, which visits only the occupied K blocks."""
    d_w = w_main.shape[1]
    stride_bk, stride_bn = (1, d_w) if transpose_w else (d_w, 1)
    k_dim = a_op.shape[1]
    lo_kernel = None if lo_dense else w_lo
    if base_mode() == "cublas":
        c = a_op @ (w_main.t() if transpose_w else w_main)
        if lo_dense:
            c.addmm_(a_op, w_lo.t() if transpose_w else w_lo)
        _launch_gemm(
            a_op=a_op,
            b_op=None,
            b_lo=lo_kernel,
            c=c,
            bias=bias,
            stride_bk=stride_bk,
            stride_bn=stride_bn,
            k_dim=k_dim,
            lora=lora,
            occ=occ,
            acc_from_c=True,
        )
    else:
        c = _alloc(a_op.shape[0], n_cols, like=a_op)
        _launch_gemm(
            a_op=a_op,
            b_op=w_main,
            b_lo=lo_kernel,
            c=c,
            bias=bias,
            stride_bk=stride_bk,
            stride_bn=stride_bn,
            k_dim=k_dim,
            lora=lora,
            occ=occ,
            acc_from_c=False,
        )
        if lo_dense:
            c.addmm_(a_op, w_lo.t() if transpose_w else w_lo)
    return c


# ------------------------------------------------------------------------------------------ forward
def forward(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    lora_A: Tensor | None,
    lora_B: Tensor | None,
    scaling: float,
    sparse_index: Tensor | None,
    sparse_values: Tensor | None,
) -> tuple[Tensor, Tensor]:
    t, d_in = x.shape
    d_out = weight.shape[0]
    weight = weight.to(x.dtype).contiguous()
    blk = _blocks()
    lora = lora_A is not None and lora_B is not None
    if lora:
        a_mat, b_mat = lora_A.contiguous(), lora_B.contiguous()
        r = a_mat.shape[0]
        v = _alloc(t, r, like=x, dtype=torch.float32)
        grid = (_cdiv(t, blk.shrink_bm), _cdiv(r, _r_block(r)))
        K.shrink_kernel[grid](
            x,
            a_mat,
            v,
            t,
            d_in,
            r,
            x.stride(0),
            a_mat.stride(0),
            v.stride(0),
            BM=blk.shrink_bm,
            BK=blk.shrink_bk,
            BR=_r_block(r),
            PREC=_precision(x.dtype),
            UPCAST=INTERPRET,
            **_kw("shrink"),
        )
        lora_args = (v, b_mat, scaling, 1, b_mat.stride(0))  # RMAT[r, n] = B[n, r]
    else:
        v = torch.empty(0, device=x.device, dtype=torch.float32)
        lora_args = None

    nnz = 0 if sparse_index is None else sparse_index.shape[1]
    mode = sparse_mode(nnz, d_out, d_in)
    w_main, w_lo, lo_dense, occ = weight, None, False, None
    if mode == "dense":
        plan = plan_for(sparse_index, d_out, d_in)
        w_main, w_lo = _fold_weight(weight, plan, sparse_values)
        lo_dense = w_lo is not None and plan.occupancy(blk.gemm["BN"], blk.gemm["BK"]) > DENSE_OCCUPANCY
        table = plan.fold()[2]
        occ = (table, table.stride(0), 1)  # GEMM n = row of W, k = column

    # y[m, n] = Σ_k x[m, k]·W[n, k]: B_op[k, n] = W[n, k]
    y = _product(
        a_op=x,
        w_main=w_main,
        w_lo=w_lo,
        lo_dense=lo_dense,
        n_cols=d_out,
        bias=bias,
        transpose_w=True,
        lora=lora_args,
        occ=occ,
    )
    if mode == "gather":
        order, _, q, _, outs, out_ptr = plan_for(sparse_index, d_out, d_in).forward_gather()
        _scatter(x, y, outs, out_ptr, q, sparse_values.float()[order], blk)
    return y, v


def _scatter(
    a_op: Tensor,
    c: Tensor,
    outs: Tensor,
    out_ptr: Tensor,
    q: Tensor,
    vals_sorted: Tensor,
    blk: _Blocks,
    x_for_dvalues: Tensor | None = None,
) -> Tensor | None:
    """c[:, p] += Σ val·a_op[:, q] for the tiny support (in place); with ``x_for_dvalues`` also returns
    dvalues in the same (CSR) order."""
    t = a_op.shape[0]
    n_t = _cdiv(t, blk.scatter_bt)
    nnz = q.numel()
    with_dv = x_for_dvalues is not None
    dv_part = _alloc(n_t, nnz, like=a_op, dtype=torch.float32) if with_dv else c
    x2 = x_for_dvalues if with_dv else a_op
    K.sparse_scatter_kernel[(n_t, outs.numel())](
        a_op,
        c,
        outs,
        out_ptr,
        q,
        vals_sorted.contiguous(),
        x2,
        dv_part,
        t,
        nnz,
        a_op.stride(0),
        c.stride(0),
        x2.stride(0),
        BT=blk.scatter_bt,
        BS=blk.bs,
        WITH_DVALUES=with_dv,
        **_kw("scatter"),
    )
    return dv_part.sum(0) if with_dv else None


# ----------------------------------------------------------------------------------------- backward
def _token_reduce(g: Tensor, x: Tensor, blk: _Blocks) -> Tensor:
    """gᵀ·x (r x d) in fp32 with the token dimension split over enough programs to fill the GPU."""
    t, r = g.shape
    d = x.shape[1]
    n_k, n_r = _cdiv(d, blk.a_grad_bk), _cdiv(r, _r_block(r))
    n_split = max(1, min(_cdiv(t, blk.a_grad_bt), (2 * _num_sms(x.device)) // max(1, n_k * n_r)))
    t_per_split = _cdiv(_cdiv(t, n_split), blk.a_grad_bt) * blk.a_grad_bt
    n_split = _cdiv(t, t_per_split)
    part = _alloc(n_split, r, d, like=x, dtype=torch.float32)
    K.lora_a_grad_kernel[(n_k, n_split, n_r)](
        g,
        x,
        part,
        t,
        d,
        r,
        t_per_split,
        g.stride(0),
        x.stride(0),
        BT=blk.a_grad_bt,
        BK=blk.a_grad_bk,
        BR=_r_block(r),
        PREC=_precision(x.dtype),
        UPCAST=INTERPRET,
        **_kw("a_grad"),
    )
    return part.sum(0)


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
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    t, d_out = dy.shape
    d_in = x.shape[1]
    dy = dy.to(x.dtype).contiguous()
    weight = weight.to(x.dtype).contiguous()
    blk = _blocks()
    lora = lora_A is not None and lora_B is not None
    nnz = 0 if sparse_index is None else sparse_index.shape[1]
    mode = sparse_mode(nnz, d_out, d_in)
    plan = plan_for(sparse_index, d_out, d_in) if mode != "none" else None
    prec = _precision(x.dtype)

    d_a = d_b = d_vals = d_bias = None
    r = lora_A.shape[0] if lora else 0
    n_mt = _cdiv(t, blk.dy_bm)
    # dB partials cost n_mt·d_out·r fp32; past half a read of dy, a second pass over dy is cheaper.
    fuse_db = lora and 4 * r * n_mt <= t
    g = torch.empty(0, device=x.device, dtype=torch.float32)
    if lora or need_bias:
        dummy = torch.empty(0, device=x.device, dtype=torch.float32)
        b_mat = lora_B.contiguous() if lora else dummy
        if lora:
            g = _alloc(t, r, like=x, dtype=torch.float32)
        db_part = _alloc(n_mt, d_out, r, like=x, dtype=torch.float32) if fuse_db else dummy
        dbias_part = _alloc(n_mt, d_out, like=x, dtype=torch.float32) if need_bias else dummy
        n_r = _cdiv(r, _r_block(r)) if lora else 1
        K.dy_pass_kernel[(n_mt, n_r)](
            dy,
            b_mat,
            v if lora else dummy,
            g,
            db_part,
            dbias_part,
            t,
            d_out,
            r,
            float(scaling),
            dy.stride(0),
            b_mat.stride(0) if lora else 0,
            v.stride(0) if lora else 0,
            g.stride(0) if lora else 0,
            BM=blk.dy_bm,
            BN=blk.dy_bn,
            BR=_r_block(max(r, 1)),
            HAS_LORA=lora,
            FUSE_DB=fuse_db,
            HAS_BIAS=need_bias,
            PREC=prec,
            UPCAST=INTERPRET,
            **_kw("dy"),
        )
        if lora:
            if fuse_db:
                d_b = db_part.sum(0)
            else:
                d_b = _token_reduce(v, dy, blk).t()
            d_b = (d_b * scaling).to(lora_B.dtype)
        if need_bias:
            d_bias = dbias_part.sum(0)

    w_main, w_lo, lo_dense, occ = weight, None, False, None
    if mode == "dense":
        w_main, w_lo = _fold_weight(weight, plan, sparse_values)
        lo_dense = w_lo is not None and plan.occupancy(blk.gemm["BK"], blk.gemm["BN"]) > DENSE_OCCUPANCY
        table = plan.fold()[2]
        occ = (table, 1, table.stride(0))  # GEMM n = column of W, k = row
    lora_args = (g, lora_A.contiguous(), 1.0, lora_A.stride(0), 1) if lora else None  # RMAT = A
    # dx[m, n] = Σ_k dy[m, k]·W[k, n]
    dx = _product(
        a_op=dy,
        w_main=w_main,
        w_lo=w_lo,
        lo_dense=lo_dense,
        n_cols=d_in,
        bias=None,
        transpose_w=False,
        lora=lora_args,
        occ=occ,
    )
    if mode == "gather":
        order, _, q, _, outs, out_ptr = plan.dx_gather()
        dv_sorted = _scatter(dy, dx, outs, out_ptr, q, sparse_values.float()[order], blk, x_for_dvalues=x)
        d_vals = torch.empty_like(dv_sorted)
        d_vals[order] = dv_sorted
        d_vals = d_vals.to(sparse_values.dtype)

    if lora:
        d_a = _token_reduce(g, x, blk).to(lora_A.dtype)
    if mode == "dense" and plan.occupancy(blk.sddmm_sb, blk.sddmm_sb) > DENSE_OCCUPANCY:
        d_vals = _dvalues_by_row_chunks(dy, x, plan).to(sparse_values.dtype)
    elif mode == "dense":
        order, blk_row, blk_col, blk_ptr, rl, cl = plan.sddmm(blk.sddmm_sb)
        dv_sorted = _alloc(nnz, like=x, dtype=torch.float32)
        K.block_sddmm_kernel[(blk_row.numel(),)](
            dy,
            x,
            blk_row,
            blk_col,
            blk_ptr,
            rl,
            cl,
            dv_sorted,
            t,
            d_out,
            d_in,
            dy.stride(0),
            x.stride(0),
            SB=blk.sddmm_sb,
            BT=blk.sddmm_bt,
            BS=blk.bs,
            SPLIT=x.dtype != torch.float32,
            PREC=prec,
            UPCAST=INTERPRET,
            **_kw("sddmm"),
        )
        d_vals = torch.empty_like(dv_sorted)
        d_vals[order] = dv_sorted
        d_vals = d_vals.to(sparse_values.dtype)
    elif mode == "none" and sparse_values is not None:
        d_vals = torch.zeros_like(sparse_values)
    return dx, d_a, d_b, d_vals, d_bias
