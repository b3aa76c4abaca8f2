"""Triton kernels of the fused sparse-LoRA linear layer (launched from :mod:`.triton_sparse_lora`).

Notation: the frozen layer is y = x·Wᵀ, LoRA is s·(x·Aᵀ)·Bᵀ and S has nnz entries (row_k, col_k, val_k).

Every dot accumulates in fp32. ``UPCAST`` is set under ``TRITON_INTERPRET=1``: the interpreter computes
bf16 ``tl.dot`` on raw bit patterns, so operands are widened to fp32 there (on a GPU they stay in the
compute dtype to use tensor cores). S is never rounded to the compute dtype on its own: a tiny support
is applied with fp32 FMAs (``sparse_scatter_kernel``), a larger one as the compensated pair
hi = round(W + S), lo = (W + S) - hi, and fp32 values that must enter a 16-bit dot are split into hi + lo
halves (16 significant bits together). Row offsets are widened to int64 before they are scaled by a
stride (T·d may exceed 2³¹).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _operand(t, DT: tl.constexpr, UPCAST: tl.constexpr):
    """Cast a tile to the dot-operand dtype (fp32 under the interpreter)."""
    if UPCAST:
        return t.to(tl.float32)
    return t.to(DT)


@triton.jit
def _split_dot(a, p, acc, DT: tl.constexpr, SPLIT: tl.constexpr, UPCAST: tl.constexpr):
    """acc += a @ p for an fp32 ``p`` whose precision must survive: hi + lo halves in ``DT``
    (``SPLIT``), or an IEEE fp32 dot when the compute dtype is fp32 anyway."""
    if SPLIT:
        p_hi = p.to(DT)
        p_lo = (p - p_hi.to(tl.float32)).to(DT)
        a_op = _operand(a, DT, UPCAST)
        acc = tl.dot(a_op, _operand(p_hi, DT, UPCAST), acc)
        acc = tl.dot(a_op, _operand(p_lo, DT, UPCAST), acc)
    else:
        acc = tl.dot(a.to(tl.float32), p, acc, input_precision="ieee")
    return acc


@triton.jit
def shrink_kernel(
    X,
    A,
    V,
    M,
    K,
    R,
    stride_xm,
    stride_ar,
    stride_vm,
    BM: tl.constexpr,
    BK: tl.constexpr,
    BR: tl.constexpr,
    PREC: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """v = x·Aᵀ (M x R, fp32). One pass over x; A (r x in) is small and stays in L2."""
    DT: tl.constexpr = X.dtype.element_ty
    pid_m = tl.program_id(0)
    pid_r = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    rr = pid_r * BR + tl.arange(0, BR)
    rk = tl.arange(0, BK)
    mask_m = rm < M
    mask_r = rr < R
    x_ptrs = X + rm.to(tl.int64)[:, None] * stride_xm + rk[None, :]
    a_ptrs = A + rr.to(tl.int64)[None, :] * stride_ar + rk[:, None]  # Aᵀ tile (BK x BR)
    acc = tl.zeros((BM, BR), dtype=tl.float32)
    for k in range(0, K, BK):
        mask_k = rk < K - k
        xt = tl.load(x_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        at = tl.load(a_ptrs, mask=mask_k[:, None] & mask_r[None, :], other=0.0)
        acc = tl.dot(_operand(xt, DT, UPCAST), _operand(at, DT, UPCAST), acc, input_precision=PREC)
        x_ptrs += BK
        a_ptrs += BK
    v_ptrs = V + rm.to(tl.int64)[:, None] * stride_vm + rr[None, :]
    tl.store(v_ptrs, acc, mask=mask_m[:, None] & mask_r[None, :])


@triton.jit
def gemm_kernel(
    # C[M, N] (+)= A_op[M, K]·B_op[K, N] with the LoRA / sparse / bias epilogue.
    A_op,
    B_op,
    B_LO,
    C,
    BIAS,
    L,
    RMAT,
    lora_scale,
    OCC,
    stride_occ_n,
    stride_occ_k,
    n16_n,
    n16_k,
    M,
    N,
    K,
    R,
    M_BUCKET,
    stride_am,
    stride_bk,
    stride_bn,
    stride_cm,
    stride_lm,
    stride_rr,
    stride_rn,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BK: tl.constexpr,
    GROUP_M: tl.constexpr,
    BR: tl.constexpr,
    ACC_FROM_C: tl.constexpr,
    DENSE_B: tl.constexpr,
    LO_B: tl.constexpr,
    HAS_LORA: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    SPLIT: tl.constexpr,
    PREC: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """One output tile of the forward (A_op = x, B_op = Wᵀ, L = v, RMAT = Bᵀ) or of dx (A_op = dy,
    B_op = W, L = g, RMAT = A); only the strides differ.

    - DENSE_B: the K loop over B_op (W, or W + S folded as hi in the dense-S mode).
    - LO_B: the lo half of W + S, multiplied only on K blocks that hold support entries (queried in the
      2-D prefix-sum table OCC at 16 x 16 granularity, so any BN/BK works).
    - HAS_LORA: acc += (lora_scale·L)·RMAT, r in chunks of BR.
    - ACC_FROM_C: start from the tile already in C (cuBLAS computed the base product).
    """
    DT: tl.constexpr = A_op.dtype.element_ty
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BM)
    num_pid_n = tl.cdiv(N, BN)
    # Grouped tile order: GROUP_M row tiles share the same B columns while they are in L2.
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m

    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    mask_m = rm < M
    mask_n = rn < N
    rm64 = rm.to(tl.int64)
    rn64 = rn.to(tl.int64)
    c_ptrs = C + rm64[:, None] * stride_cm + rn64[None, :]
    c_mask = mask_m[:, None] & mask_n[None, :]

    if ACC_FROM_C:
        acc = tl.load(c_ptrs, mask=c_mask, other=0.0).to(tl.float32)
    else:
        acc = tl.zeros((BM, BN), dtype=tl.float32)

    if DENSE_B or LO_B:
        a_ptrs = A_op + rm64[:, None] * stride_am + rk[None, :]
        b_off = rk.to(tl.int64)[:, None] * stride_bk + rn64[None, :] * stride_bn
        b_ptrs = B_op + b_off
        lo_ptrs = B_LO + b_off
        if LO_B:
            n16_lo = pid_n * (BN // 16)
            n16_hi = min(n16_lo + BN // 16, n16_n)
            occ_lo = OCC + n16_lo * stride_occ_n
            occ_hi = OCC + n16_hi * stride_occ_n
        for k in range(0, K, BK):
            mask_k = rk < K - k
            if DENSE_B:
                at = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
                bt = tl.load(b_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                acc = tl.dot(_operand(at, DT, UPCAST), _operand(bt, DT, UPCAST), acc, input_precision=PREC)
            if LO_B:
                k16_lo = k // 16
                k16_hi = min(k16_lo + BK // 16, n16_k)
                count = (
                    tl.load(occ_hi + k16_hi * stride_occ_k)
                    - tl.load(occ_lo + k16_hi * stride_occ_k)
                    - tl.load(occ_hi + k16_lo * stride_occ_k)
                    + tl.load(occ_lo + k16_lo * stride_occ_k)
                )
                if count > 0:
                    if DENSE_B:
                        at2 = at
                    else:
                        at2 = tl.load(a_ptrs, mask=mask_m[:, None] & mask_k[None, :], other=0.0)
                    lt = tl.load(lo_ptrs, mask=mask_k[:, None] & mask_n[None, :], other=0.0)
                    acc = tl.dot(
                        _operand(at2, DT, UPCAST), _operand(lt, DT, UPCAST), acc, input_precision=PREC
                    )
                lo_ptrs += BK * stride_bk
            a_ptrs += BK
            b_ptrs += BK * stride_bk

    if HAS_LORA:
        for r0 in range(0, R, BR):
            rr = r0 + tl.arange(0, BR)
            mask_r = rr < R
            lt = tl.load(
                L + rm64[:, None] * stride_lm + rr[None, :], mask=mask_m[:, None] & mask_r[None, :], other=0.0
            )
            # the scale is applied in fp32 before the single rounding to the dot dtype
            lt = lt * lora_scale
            rt = tl.load(
                RMAT + rr[:, None] * stride_rr + rn64[None, :] * stride_rn,
                mask=mask_r[:, None] & mask_n[None, :],
                other=0.0,
            )
            acc = tl.dot(_operand(lt, DT, UPCAST), _operand(rt, DT, UPCAST), acc, input_precision=PREC)

    if HAS_BIAS:
        acc += tl.load(BIAS + rn, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    tl.store(c_ptrs, acc.to(C.dtype.element_ty), mask=c_mask)


@triton.jit
def dy_pass_kernel(
    DY,
    BMAT,
    V,
    G,
    DB_PART,
    DBIAS_PART,
    M,
    N,
    R,
    lora_scale,
    stride_dm,
    stride_bn,
    stride_vm,
    stride_gm,
    BM: tl.constexpr,
    BN: tl.constexpr,
    BR: tl.constexpr,
    HAS_LORA: tl.constexpr,
    FUSE_DB: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    PREC: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """One read of a (BM x out) slab of dy gives, for these tokens: g = s·dy·B (complete), this slab's
    share of dB = dyᵀ·v (FUSE_DB, when r is small enough that the partials cost less than re-reading dy)
    and of dbias (partials summed by the caller: no atomics, deterministic)."""
    DT: tl.constexpr = DY.dtype.element_ty
    pid_m = tl.program_id(0)
    pid_r = tl.program_id(1)
    rm = pid_m * BM + tl.arange(0, BM)
    mask_m = rm < M
    rm64 = rm.to(tl.int64)
    rn_base = tl.arange(0, BN)
    if HAS_LORA:
        rr = pid_r * BR + tl.arange(0, BR)
        mask_r = rr < R
        vt = tl.load(
            V + rm64[:, None] * stride_vm + rr[None, :], mask=mask_m[:, None] & mask_r[None, :], other=0.0
        )
        vt = _operand(vt, DT, UPCAST)
        g = tl.zeros((BM, BR), dtype=tl.float32)
    for n0 in range(0, N, BN):
        rn = n0 + rn_base
        mask_n = rn < N
        dy = tl.load(
            DY + rm64[:, None] * stride_dm + rn[None, :], mask=mask_m[:, None] & mask_n[None, :], other=0.0
        )
        if HAS_LORA:
            bt = tl.load(
                BMAT + rn.to(tl.int64)[:, None] * stride_bn + rr[None, :],
                mask=mask_n[:, None] & mask_r[None, :],
                other=0.0,
            )
            dy_op = _operand(dy, DT, UPCAST)
            g = tl.dot(dy_op, _operand(bt, DT, UPCAST), g, input_precision=PREC)
            if FUSE_DB:
                db = tl.dot(tl.trans(dy_op), vt, input_precision=PREC)
                db_ptrs = DB_PART + pid_m.to(tl.int64) * N * R + rn.to(tl.int64)[:, None] * R + rr[None, :]
                tl.store(db_ptrs, db, mask=mask_n[:, None] & mask_r[None, :])
        if HAS_BIAS:
            if pid_r == 0:
                tl.store(
                    DBIAS_PART + pid_m.to(tl.int64) * N + rn, tl.sum(dy.to(tl.float32), axis=0), mask=mask_n
                )
    if HAS_LORA:
        tl.store(
            G + rm64[:, None] * stride_gm + rr[None, :],
            g * lora_scale,
            mask=mask_m[:, None] & mask_r[None, :],
        )


@triton.jit
def sparse_scatter_kernel(
    A_op,
    C,
    OUT_LIST,
    OUT_PTR,
    SP_Q,
    SP_V,
    X2,
    DV_PART,
    M,
    NNZ,
    stride_am,
    stride_cm,
    stride_x2m,
    BT: tl.constexpr,
    BS: tl.constexpr,
    WITH_DVALUES: tl.constexpr,
):
    """The tiny-support term, added in place: C[t, p] += Σ_k val_k·A_op[t, q_k] over the entries whose
    output coordinate is p (forward: A_op = x, p = row, q = col; dx: A_op = dy, p = col, q = row).

    One program per (token block, distinct output coordinate), entries in CSR order. Products and sums are
    fp32 on CUDA cores; the values are never rounded. WITH_DVALUES (dx pass) also writes this token block's
    share of dvalues[k] = Σ_t dy[t, row_k]·x[t, col_k], reusing the dy gather: x[:, p] is one column.
    """
    pid_t = tl.program_id(0)
    pid_o = tl.program_id(1)
    rt = pid_t * BT + tl.arange(0, BT)
    mask_t = rt < M
    rt64 = rt.to(tl.int64)
    out = tl.load(OUT_LIST + pid_o)
    j_lo = tl.load(OUT_PTR + pid_o)
    j_hi = tl.load(OUT_PTR + pid_o + 1)
    acc = tl.zeros((BT,), dtype=tl.float32)
    if WITH_DVALUES:
        x_col = tl.load(X2 + rt64 * stride_x2m + out, mask=mask_t, other=0.0).to(tl.float32)
    for j in range(j_lo, j_hi, BS):
        jj = j + tl.arange(0, BS)
        mask_j = jj < j_hi
        q = tl.load(SP_Q + jj, mask=mask_j, other=0)
        val = tl.load(SP_V + jj, mask=mask_j, other=0.0)
        g = tl.load(
            A_op + rt64[:, None] * stride_am + q[None, :], mask=mask_t[:, None] & mask_j[None, :], other=0.0
        ).to(tl.float32)
        acc += tl.sum(g * val[None, :], axis=1)
        if WITH_DVALUES:
            tl.store(DV_PART + pid_t.to(tl.int64) * NNZ + jj, tl.sum(g * x_col[:, None], axis=0), mask=mask_j)
    c_ptrs = C + rt64 * stride_cm + out
    c = tl.load(c_ptrs, mask=mask_t, other=0.0).to(tl.float32)
    tl.store(c_ptrs, (c + acc).to(C.dtype.element_ty), mask=mask_t)


@triton.jit
def lora_a_grad_kernel(
    G,
    X,
    DA_PART,
    M,
    K,
    R,
    t_per_split,
    stride_gm,
    stride_xm,
    BT: tl.constexpr,
    BK: tl.constexpr,
    BR: tl.constexpr,
    PREC: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """dA = gᵀ·x, K-dimension = tokens: program (k-block, token split, r-block) writes one partial."""
    DT: tl.constexpr = X.dtype.element_ty
    pid_k = tl.program_id(0)
    pid_t = tl.program_id(1)
    pid_r = tl.program_id(2)
    rk = pid_k * BK + tl.arange(0, BK)
    rr = pid_r * BR + tl.arange(0, BR)
    mask_k = rk < K
    mask_r = rr < R
    acc = tl.zeros((BR, BK), dtype=tl.float32)
    t_start = pid_t * t_per_split
    t_end = min(t_start + t_per_split, M)
    for t0 in range(t_start, t_end, BT):
        rt = t0 + tl.arange(0, BT)
        mask_t = rt < t_end
        rt64 = rt.to(tl.int64)
        gt = tl.load(
            G + rt64[:, None] * stride_gm + rr[None, :], mask=mask_t[:, None] & mask_r[None, :], other=0.0
        )
        xt = tl.load(
            X + rt64[:, None] * stride_xm + rk[None, :], mask=mask_t[:, None] & mask_k[None, :], other=0.0
        )
        acc = tl.dot(tl.trans(_operand(gt, DT, UPCAST)), _operand(xt, DT, UPCAST), acc, input_precision=PREC)
    out = DA_PART + pid_t.to(tl.int64) * R * K + rr.to(tl.int64)[:, None] * K + rk[None, :]
    tl.store(out, acc, mask=mask_r[:, None] & mask_k[None, :])


@triton.jit
def block_sddmm_kernel(
    DY,
    X,
    BLK_ROW,
    BLK_COL,
    BLK_PTR,
    SP_RL,
    SP_CL,
    DV_SORTED,
    M,
    N_OUT,
    K_IN,
    stride_dm,
    stride_xm,
    SB: tl.constexpr,
    BT: tl.constexpr,
    BS: tl.constexpr,
    SPLIT: tl.constexpr,
    PREC: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """dvalues for a larger support, one program per occupied (SB x SB) block of S: the block of
    dyᵀ·x is accumulated on tensor cores over all tokens (only occupied blocks, so never a dense dS),
    then its support entries are picked out with a one-hot product."""
    DT: tl.constexpr = X.dtype.element_ty
    b = tl.program_id(0)
    row0 = tl.load(BLK_ROW + b) * SB
    col0 = tl.load(BLK_COL + b) * SB
    rs = tl.arange(0, SB)
    rows = row0 + rs
    cols = col0 + rs
    mask_rows = rows < N_OUT
    mask_cols = cols < K_IN
    acc = tl.zeros((SB, SB), dtype=tl.float32)
    for t0 in range(0, M, BT):
        rt = t0 + tl.arange(0, BT)
        mask_t = rt < M
        rt64 = rt.to(tl.int64)
        dy = tl.load(
            DY + rt64[:, None] * stride_dm + rows[None, :],
            mask=mask_t[:, None] & mask_rows[None, :],
            other=0.0,
        )
        xt = tl.load(
            X + rt64[:, None] * stride_xm + cols[None, :],
            mask=mask_t[:, None] & mask_cols[None, :],
            other=0.0,
        )
        acc = tl.dot(tl.trans(_operand(dy, DT, UPCAST)), _operand(xt, DT, UPCAST), acc, input_precision=PREC)
    j_lo = tl.load(BLK_PTR + b)
    j_hi = tl.load(BLK_PTR + b + 1)
    for j in range(j_lo, j_hi, BS):
        jj = j + tl.arange(0, BS)
        mask_j = jj < j_hi
        rl = tl.load(SP_RL + jj, mask=mask_j, other=-1)
        cl = tl.load(SP_CL + jj, mask=mask_j, other=-1)
        pick_row = tl.where(rl[:, None] == rs[None, :], 1.0, 0.0)  # (BS x SB) one-hot
        picked = _split_dot(pick_row, acc, tl.zeros((BS, SB), dtype=tl.float32), DT, SPLIT, UPCAST)
        dv = tl.sum(tl.where(cl[:, None] == rs[None, :], picked, 0.0), axis=1)
        tl.store(DV_SORTED + jj, dv, mask=mask_j)
