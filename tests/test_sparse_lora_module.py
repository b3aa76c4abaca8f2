"""SparseLoRALinear and the plain-torch reference (the oracle of the kernel tests)."""

import os

import pytest
import torch
from torch import nn

# As in test_kernels.py: decorate the kernels for the interpreter, then restore the variable so that
# other modules keep the torch reference; each test here runs with it set (fp32 layers use the kernels).
_previous = os.environ.get("TRITON_INTERPRET")
os.environ["TRITON_INTERPRET"] = "1"
try:
    import triton  # noqa: F401

    from zoo.adapters.kernels import triton_sparse_lora  # noqa: F401
except ImportError:  # CPU install without triton: the layer still works on the reference
    pass
from zoo.adapters.kernels import SparseLoRALinear, sparse_lora_linear, sparse_lora_linear_reference  # noqa: E402

if _previous is None:
    del os.environ["TRITON_INTERPRET"]
else:
    os.environ["TRITON_INTERPRET"] = _previous


@pytest.fixture(autouse=True)
def _interpreted(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _support(d_out: int, d_in: int, nnz: int, gen: torch.Generator) -> torch.Tensor:
    flat = torch.randperm(d_out * d_in, generator=gen)[:nnz]
    return torch.stack([flat // d_in, flat % d_in])


def _dense_oracle(x, w, b, a, bb, s, idx, vals):
    """Independent dense formula: W + s·B·A + S materialised (fine at test sizes)."""
    delta = torch.zeros_like(w)
    if a is not None:
        delta = delta + s * bb @ a
    if idx is not None:
        delta = delta.index_put(tuple(idx), vals, accumulate=True)
    y = x @ (w + delta).t()
    return y if b is None else y + b


def test_reference_matches_dense_formula_float64():
    gen = torch.Generator().manual_seed(0)
    d_in, d_out, r = 13, 11, 3
    x = torch.randn(2, 5, d_in, generator=gen, dtype=torch.float64)
    w, b = (
        torch.randn(d_out, d_in, generator=gen, dtype=torch.float64),
        torch.randn(d_out, dtype=torch.float64),
    )
    a, bb = (
        torch.randn(r, d_in, generator=gen, dtype=torch.float64),
        torch.randn(d_out, r, generator=gen, dtype=torch.float64),
    )
    idx = _support(d_out, d_in, 17, gen)
    vals = torch.randn(17, generator=gen, dtype=torch.float64)
    got = sparse_lora_linear_reference(x, w, b, a, bb, 0.7, idx, vals)
    assert got.shape == (2, 5, d_out)
    torch.testing.assert_close(got, _dense_oracle(x, w, b, a, bb, 0.7, idx, vals), rtol=1e-12, atol=1e-12)


def test_gradcheck_reference():
    gen = torch.Generator().manual_seed(1)
    d_in, d_out, r = 7, 5, 2
    kw = {"dtype": torch.float64}
    x = torch.randn(3, d_in, generator=gen, **kw).requires_grad_()
    w = torch.randn(d_out, d_in, generator=gen, **kw)
    b = torch.randn(d_out, generator=gen, **kw).requires_grad_()
    a = torch.randn(r, d_in, generator=gen, **kw).requires_grad_()
    bb = torch.randn(d_out, r, generator=gen, **kw).requires_grad_()
    idx = _support(d_out, d_in, 6, gen)
    vals = torch.randn(6, generator=gen, **kw).requires_grad_()
    fn = lambda *t: sparse_lora_linear_reference(t[0], w, t[1], t[2], t[3], 1.5, idx, t[4])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b, a, bb, vals))


def test_gradcheck_custom_op_backward_formulas():
    """float64 runs the op's hand-written backward (reference backend); gradcheck validates it."""
    gen = torch.Generator().manual_seed(2)
    d_in, d_out, r = 6, 9, 3
    kw = {"dtype": torch.float64}
    x = torch.randn(2, 2, d_in, generator=gen, **kw).requires_grad_()
    w = torch.randn(d_out, d_in, generator=gen, **kw)
    b = torch.randn(d_out, generator=gen, **kw).requires_grad_()
    a = torch.randn(r, d_in, generator=gen, **kw).requires_grad_()
    bb = torch.randn(d_out, r, generator=gen, **kw).requires_grad_()
    idx = _support(d_out, d_in, 8, gen)
    vals = torch.randn(8, generator=gen, **kw).requires_grad_()
    fn = lambda *t: sparse_lora_linear(t[0], w, t[1], t[2], t[3], 0.5, idx, t[4])  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, b, a, bb, vals))
    # sparse-only and LoRA-only variants
    assert torch.autograd.gradcheck(
        lambda xx, vv: sparse_lora_linear(xx, w, None, None, None, 1.0, idx, vv), (x, vals)
    )
    assert torch.autograd.gradcheck(
        lambda xx, aa, b2: sparse_lora_linear(xx, w, None, aa, b2, 2.0, None, None), (x, a, bb)
    )


def _layer(seed: int = 0, nnz: int = 10, r: int = 4, dtype=torch.float32) -> SparseLoRALinear:
    gen = torch.Generator().manual_seed(seed)
    lin = nn.Linear(12, 10).to(dtype)
    layer = SparseLoRALinear.from_linear(lin, r=r, alpha=8, sparse_index=_support(10, 12, nnz, gen))
    return layer


def test_module_parameters_and_init():
    torch.manual_seed(0)
    lin = nn.Linear(12, 10)
    layer = SparseLoRALinear.from_linear(
        lin, r=4, alpha=8, sparse_index=_support(10, 12, 10, torch.Generator().manual_seed(0))
    )
    trainable = {n for n, p in layer.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A", "lora_B", "sparse_values"}
    assert "sparse_index" in dict(layer.named_buffers())
    assert layer.weight.data_ptr() == lin.weight.data_ptr()  # shared, not copied
    assert layer.scaling == 2.0 and layer.lora_A.abs().sum() > 0
    assert torch.all(layer.lora_B == 0) and torch.all(layer.sparse_values == 0)
    assert layer.sparse_values.dtype == torch.float32
    x = torch.randn(3, 12)
    torch.testing.assert_close(layer(x), lin(x))  # B = 0 and S = 0: equals the base layer


def test_merge_equals_unmerged_forward_and_unmerge_restores():
    torch.manual_seed(3)
    layer = _layer()
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.sparse_values.normal_()
    w0 = layer.weight.detach().clone()
    x = torch.randn(2, 3, 12)
    unmerged = layer(x)
    dense = _dense_oracle(
        x.double(),
        w0.double(),
        layer.bias.double(),
        layer.lora_A.double(),
        layer.lora_B.double(),
        layer.scaling,
        layer.sparse_index,
        layer.sparse_values.double(),
    )
    torch.testing.assert_close(unmerged.double(), dense, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        layer.delta_weight(),
        (layer.scaling * layer.lora_B @ layer.lora_A).index_put(
            tuple(layer.sparse_index), layer.sparse_values, accumulate=True
        ),
    )
    layer.merge()
    assert layer.merged and not torch.equal(layer.weight, w0)
    torch.testing.assert_close(layer(x), unmerged, rtol=1e-5, atol=1e-5)
    layer.unmerge()
    assert not layer.merged
    torch.testing.assert_close(layer.weight, w0, rtol=1e-6, atol=1e-6)


def test_sparse_only_and_lora_only_layers():
    gen = torch.Generator().manual_seed(4)
    lin = nn.Linear(12, 10, bias=False)
    sparse_only = SparseLoRALinear.from_linear(lin, r=0, alpha=1, sparse_index=_support(10, 12, 5, gen))
    assert sparse_only.lora_A is None and sparse_only.nnz == 5
    lora_only = SparseLoRALinear.from_linear(lin, r=2, alpha=2)
    assert lora_only.sparse_values is None and lora_only.sparse_index is None
    x = torch.randn(4, 12)
    for layer in (sparse_only, lora_only):
        y = layer(x)
        y.square().sum().backward()
        assert y.shape == (4, 10)
    assert sparse_only.sparse_values.grad.shape == (5,) and sparse_only.sparse_values.grad.abs().sum() > 0
    assert lora_only.lora_B.grad.abs().sum() > 0


def test_bad_shapes_raise_clear_errors():
    w = torch.randn(4, 3)
    with pytest.raises(ValueError, match="does not match weight"):
        sparse_lora_linear(torch.randn(2, 5), w, None, None, None, 1.0, None, None)
    with pytest.raises(ValueError, match="lora_A and lora_B"):
        sparse_lora_linear(torch.randn(2, 3), w, None, torch.randn(1, 3), None, 1.0, None, None)
    with pytest.raises(ValueError, match="must be frozen"):
        sparse_lora_linear(torch.randn(2, 3), w.requires_grad_(), None, None, None, 1.0, None, None)
    with pytest.raises(ValueError, match="out of range"):
        SparseLoRALinear(3, 4, 1, 1.0, sparse_index=torch.tensor([[4], [0]]))
