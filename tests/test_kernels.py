"""The Triton sparse-LoRA kernels, run on CPU through TRITON_INTERPRET=1, against the float64 reference.

Shapes are tiny and deliberately ragged (not multiples of the 16/32 interpreter blocks) so every kernel
runs several programs with masked edges; every buffer a kernel writes is first filled with NaN.
"""

import os

import pytest
import torch

# triton.jit picks the interpreter when a kernel is decorated, so the kernels are imported with
# TRITON_INTERPRET=1; the variable is then restored so that other test modules keep the fast torch
# reference on CPU, and set again around each test here.
_previous = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"
from zoo.adapters.kernels import (  # noqa: E402  # noqa: E402
    backend_for,
    composed,
    dispatch,
    sparse_lora_linear,
    sparse_lora_linear_reference,
    triton_kernels,
    triton_sparse_lora,
)

if _previous is None:
    del os.environ["TRITON_INTERPRET"]
else:
    os.environ["TRITON_INTERPRET"] = _previous

# Max error relative to the largest reference magnitude (outputs are rounded once to the dtype; the
# interpreter truncates fp32 -> bf16 instead of rounding, hence the wider bf16 band).
TOL = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}


@pytest.fixture(autouse=True)
def _interpreted_and_poisoned(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setattr(triton_sparse_lora, "POISON_OUTPUTS", True)


SPARSE_MODES = ["gather", "dense-blocks", "dense-full"]


def _set_sparse_mode(monkeypatch, mode):
    """gather: tiny-support epilogue; dense-blocks: W+S fold, lo and dvalues over occupied blocks in
    Triton; dense-full: the same fold, lo and dvalues through dense row chunks (cuBLAS path)."""
    monkeypatch.setenv("ZOO_SPARSE_LORA_MODE", mode.split("-")[0])
    monkeypatch.setattr(triton_sparse_lora, "DENSE_OCCUPANCY", -1.0 if mode == "dense-full" else 2.0)


def _support(d_out, d_in, nnz, gen):
    flat = torch.randperm(d_out * d_in, generator=gen)[:nnz]
    return torch.stack([flat // d_in, flat % d_in])


def _inputs(lead, d_in, d_out, r, nnz, dtype, seed, bias=True):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).to(dtype).requires_grad_()

    x = rnd(*lead, d_in)
    w = (torch.randn(d_out, d_in, generator=gen) / d_in**0.5).to(dtype)
    b = rnd(d_out) if bias else None
    a = rnd(r, d_in, scale=0.3) if r else None
    bb = rnd(d_out, r, scale=0.3) if r else None
    idx = _support(d_out, d_in, nnz, gen) if nnz is not None else None
    vals = (torch.randn(nnz, generator=gen) * 0.5).requires_grad_() if nnz is not None else None
    return x, w, b, a, bb, idx, vals


def _check(got, want, dtype, what):
    assert got is not None and want is not None, what
    assert got.shape == want.shape, what
    assert torch.isfinite(got).all(), f"{what}: non-finite (unwritten?) elements"
    if want.numel() == 0:
        return
    err = (got.double() - want.double()).abs().max().item()
    scale = max(1.0, want.abs().max().item())
    assert err <= TOL[dtype] * scale, f"{what}: max error {err:.3g} > {TOL[dtype] * scale:.3g}"


def _compare(lead, d_in, d_out, r, nnz, dtype, seed=0, scaling=0.75, bias=True):
    x, w, b, a, bb, idx, vals = _inputs(lead, d_in, d_out, r, nnz, dtype, seed, bias)
    params = [t for t in (x, b, a, bb, vals) if t is not None]
    y = sparse_lora_linear(x, w, b, a, bb, scaling, idx, vals)
    assert y.dtype == dtype and y.shape == (*lead, d_out)
    dy = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    grads = torch.autograd.grad(y, params, dy)

    ref_in = [t.detach().double().requires_grad_() if t is not None else None for t in (x, b, a, bb, vals)]
    xr, br, ar, bbr, vr = ref_in
    yr = sparse_lora_linear_reference(xr, w.double(), br, ar, bbr, scaling, idx, vr)
    ref_params = [t for t in ref_in if t is not None]
    ref_grads = torch.autograd.grad(yr, ref_params, dy.double(), allow_unused=True)  # nnz = 0: unused
    ref_grads = [torch.zeros_like(p) if g is None else g for p, g in zip(ref_params, ref_grads)]
    _check(y, yr, dtype, "y")
    names = [n for n, t in zip(("dx", "dbias", "dA", "dB", "dvalues"), (x, b, a, bb, vals)) if t is not None]
    for name, g, gr in zip(names, grads, ref_grads):
        _check(g, gr, dtype, name)


def test_cpu_tensors_take_the_interpreted_triton_path(monkeypatch):
    assert backend_for(torch.zeros(2, 3)) == "triton"
    monkeypatch.delenv("TRITON_INTERPRET")
    assert backend_for(torch.zeros(2, 3)) == "reference"
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert backend_for(torch.zeros(2, 3, dtype=torch.float64)) == "reference"
    assert type(triton_kernels.gemm_kernel).__name__ == "InterpretedFunction"


@pytest.mark.parametrize("mode", SPARSE_MODES)
@pytest.mark.parametrize("base", ["triton", "cublas"])
def test_forward_and_grads_fp32(monkeypatch, mode, base):
    _set_sparse_mode(monkeypatch, mode)
    monkeypatch.setenv("ZOO_SPARSE_LORA_BASE", base)
    _compare((2, 19), d_in=45, d_out=37, r=3, nnz=41, dtype=torch.float32, seed=1)


@pytest.mark.parametrize("r, nnz", [(1, 0), (20, 7), (0, 29), (5, None)])
def test_ranks_and_support_edge_cases(r, nnz):
    """rank 1, a rank that is not a power of two (> one 16-wide r block), nnz = 0, sparse only, LoRA only."""
    _compare((23,), d_in=35, d_out=18, r=r, nnz=nnz, dtype=torch.float32, seed=2 + r, bias=r != 1)


def test_rank_beyond_one_r_block():
    """r = 70 runs the LoRA epilogue in several 64-wide chunks and the dy pass with several r programs."""
    _compare((17,), d_in=20, d_out=33, r=70, nnz=5, dtype=torch.float32, seed=3)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("mode", SPARSE_MODES)
@pytest.mark.parametrize("base", ["triton", "cublas"])
def test_half_precision(monkeypatch, dtype, mode, base):
    _set_sparse_mode(monkeypatch, mode)
    monkeypatch.setenv("ZOO_SPARSE_LORA_BASE", base)
    _compare((3, 7), d_in=33, d_out=40, r=4, nnz=25, dtype=dtype, seed=4)


@pytest.mark.parametrize("mode", SPARSE_MODES)
@pytest.mark.parametrize("base", ["triton", "cublas"])
def test_small_sparse_entries_survive_a_bf16_weight(monkeypatch, mode, base):
    """y = x0·(W00 + S00) + x1·W01 with x = (1, -1), W00 = W01 = 1, S00 = 1e-3: folding S into a bf16 W
    (ulp 2^-7 at 1.0) would give exactly 0; the kernel must return ~1e-3."""
    _set_sparse_mode(monkeypatch, mode)
    monkeypatch.setenv("ZOO_SPARSE_LORA_BASE", base)
    x = torch.tensor([[1.0, -1.0] + [0.0] * 14], dtype=torch.bfloat16)
    w = torch.zeros(16, 16, dtype=torch.bfloat16)
    w[0, 0] = w[0, 1] = 1.0
    idx = torch.tensor([[0, 3], [0, 5]])
    vals = torch.tensor([1e-3, 0.5])
    y = sparse_lora_linear(x, w, None, None, None, 1.0, idx, vals)
    assert abs(y[0, 0].item() - 1e-3) < 1e-5
    assert y[0, 3].item() == 0.0  # x[5] = 0


def test_plan_cache_follows_in_place_changes_of_the_support():
    x, w, b, a, bb, idx, vals = _inputs((9,), 20, 18, 2, 6, torch.float32, seed=5)
    y1 = sparse_lora_linear(x, w, b, a, bb, 1.0, idx, vals)
    with torch.no_grad():
        idx[1] = (idx[1] + 1) % 20  # same tensor object, new support
    y2 = sparse_lora_linear(x, w, b, a, bb, 1.0, idx, vals)
    ref = sparse_lora_linear_reference(
        x.double(), w.double(), b.double(), a.double(), bb.double(), 1.0, idx, vals.double()
    )
    assert not torch.allclose(y1, y2)
    _check(y2, ref, torch.float32, "y after support change")


def test_torch_compile_sees_the_custom_op():
    x, w, b, a, bb, idx, vals = _inputs((2, 5), 17, 19, 3, 4, torch.float32, seed=6)

    def fn(x, a, bb, vals):
        return sparse_lora_linear(x, w, b, a, bb, 0.5, idx, vals).square().sum()

    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    got = compiled(x, a, bb, vals)
    got.backward()
    want = fn(x.detach(), a.detach(), bb.detach(), vals.detach())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert vals.grad is not None and torch.isfinite(vals.grad).all() and vals.grad.abs().sum() > 0


def test_autocast_keeps_sparse_values_fp32():
    x, w, b, a, bb, idx, vals = _inputs((6,), 16, 16, 2, 5, torch.float32, seed=7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = sparse_lora_linear(x, w, b, a, bb, 1.0, idx, vals)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert vals.grad.dtype == torch.float32 and a.grad.dtype == torch.float32
    assert torch.isfinite(vals.grad).all() and vals.grad.abs().sum() > 0


# ------------------------------------------------------------------ the cuBLAS-composed paths (plain torch)
CUBLAS_CASES = [
    ("cublas", (2, 19), 45, 37, 3, None),
    ("cublas", (23,), 35, 18, 1, 0),
    ("autograd", (2, 19), 45, 37, 3, None),
    ("lowrank", (2, 19), 45, 37, 20, 41),
    ("lowrank", (23,), 35, 18, 0, 29),  # sparse only
    ("split", (17,), 20, 33, 70, 60),
    ("split", (23,), 35, 18, 0, 300),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("path, lead, d_in, d_out, r, nnz", CUBLAS_CASES)
def test_cublas_paths_match_the_float64_reference(monkeypatch, dtype, path, lead, d_in, d_out, r, nnz):
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", path)
    _compare(lead, d_in, d_out, r, nnz, dtype, seed=11 + r, bias=r != 1)
    assert dispatch.last_path.split("/")[0] == path


def test_lowrank_factors_reproduce_the_dense_update():
    """B'·A' = s·B·A + S (duplicates summed), and a sparse-only layer gets N x in / out x N factors."""
    gen = torch.Generator().manual_seed(14)
    a, b = torch.randn(3, 9, generator=gen), torch.randn(7, 3, generator=gen)
    idx = torch.tensor([[0, 6, 6, 2], [8, 0, 0, 4]])
    vals = torch.randn(4, generator=gen)
    a2, b2 = composed.lowrank_factors(a, b, 0.5, idx, vals, 7, 9, torch.float64)
    dense = 0.5 * b.double() @ a.double()
    dense.index_put_((idx[0], idx[1]), vals.double(), accumulate=True)
    torch.testing.assert_close(b2 @ a2, dense)
    a3, b3 = composed.lowrank_factors(None, None, 0.5, idx, vals, 7, 9, torch.float32)
    assert a3.shape == (4, 9) and b3.shape == (7, 4)


def test_split_dvalues_over_several_row_blocks(monkeypatch):
    """Blocks of 3 rows of dyᵀ·x: entries of every block (and rows with none) are picked exactly once."""
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", "split")
    monkeypatch.setattr(composed, "_BLOCK_ELEMENTS", 3 * 26)
    _compare((13,), d_in=26, d_out=31, r=2, nnz=200, dtype=torch.float32, seed=12)


@pytest.mark.parametrize("path", ["lowrank", "split"])
def test_small_sparse_entries_survive_on_the_cublas_paths(monkeypatch, path):
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", path)
    x = torch.tensor([[1.0, -1.0] + [0.0] * 14], dtype=torch.bfloat16)
    w = torch.zeros(16, 16, dtype=torch.bfloat16)
    w[0, 0] = w[0, 1] = 1.0
    idx, vals = torch.tensor([[0, 3], [0, 5]]), torch.tensor([1e-3, 0.5])
    y = sparse_lora_linear(x, w, None, None, None, 1.0, idx, vals)
    assert abs(y[0, 0].item() - 1e-3) < 1e-5 and y[0, 3].item() == 0.0


def test_a_forced_path_fits_the_layer_and_bad_names_are_refused(monkeypatch):
    x, w, b, a, bb, idx, vals = _inputs((9,), 100, 80, 2, 6000, torch.float32, seed=13)
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", "lowrank")  # 6000 entries: too many for low rank
    sparse_lora_linear(x, w, b, a, bb, 1.0, idx, vals)
    assert dispatch.last_path == "split"
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", "autograd")  # a LoRA path with a support: low rank, then it
    sparse_lora_linear(x, w, b, a, bb, 1.0, idx[:, :50], vals[:50].detach())
    assert dispatch.last_path == "lowrank/autograd"
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", "fastest")
    with pytest.raises(ValueError, match="ZOO_SPARSE_LORA_PATH"):
        sparse_lora_linear(x, w, b, a, bb, 1.0, idx, vals)


def test_the_dispatcher_keeps_the_fastest_candidate_and_logs_it(caplog):
    key = ("cuda:0", torch.bfloat16, 8192, 4096, 4096, 16, 64)
    times = {"lowrank": 0.9, "split": 2.0}

    def time_ms(path):
        if path == "triton":
            raise RuntimeError("no kernel for this GPU")
        return times[path]

    with caplog.at_level("DEBUG", logger="zoo.kernels"):
        assert dispatch.pick_fastest(key, dispatch.candidates(64), time_ms) == "lowrank"
    assert dispatch.picks()[key] == ("lowrank", times)
    assert "sparse-lora path lowrank" in caplog.text and "nnz=64" in caplog.text
    assert dispatch.candidates(0) == ["cublas", "autograd", "triton"]
    assert dispatch.candidates(composed.LOWRANK_MAX_NNZ + 1) == ["split", "triton"]


def test_the_layer_reports_the_path_its_forward_ran(monkeypatch):
    from zoo.adapters.kernels import SparseLoRALinear

    support = _support(10, 12, 5, torch.Generator().manual_seed(0))
    layer = SparseLoRALinear.from_linear(torch.nn.Linear(12, 10), r=2, alpha=4, sparse_index=support)
    monkeypatch.setenv("ZOO_SPARSE_LORA_PATH", "cublas")
    layer(torch.randn(3, 12))
    assert layer.last_backend == "lowrank/cublas"
    monkeypatch.delenv("ZOO_SPARSE_LORA_PATH")
    layer(torch.randn(3, 12))
    assert layer.last_backend == "triton"  # CPU under the interpreter
