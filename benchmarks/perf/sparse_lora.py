"""Fused sparse-LoRA kernel vs the frozen base linear layer and the usual ways to run LoRA (+ S).

    python benchmarks/perf/sparse_lora.py            # full table (CUDA; a few minutes on an H100/H200)
    python benchmarks/perf/sparse_lora.py --quick    # 8192 x 4096 x 4096, r = 16 only

Runs from the repository root without the project being installed (the kernels package is loaded from
this checkout). Order: device + versions, a correctness sweep on small ragged shapes, then per shape a
correctness check of every fused variant on the exact inputs it times, then the timing table: median
forward + backward time (CUDA events, after warm-up) as a ratio to the frozen base layer timed in the
same run on the same card. Everything is bf16; W is frozen, so the base backward is dx only.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import types
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(8192, 4096, 4096), (8192, 4096, 11008), (16384, 1024, 1024)]
RANKS = [16, 64]
DENSITIES = [0.001, 0.01]
DSEE_NNZ = 64  # DSEE's default: 64 entries per matrix (16-128 in its scripts)
ALPHA_OVER_R = 2.0


def load_kernels() -> types.ModuleType:
    """Import ``adapters/kernels`` of this checkout as ``zoo.adapters.kernels`` (the mapping that
    pyproject's package-dir sets up when installed), whether or not ``zoo`` is installed."""
    name = "zoo.adapters.kernels"
    if name in sys.modules:
        return sys.modules[name]
    for pkg, folder in (("zoo", REPO / "zoo"), ("zoo.adapters", REPO / "adapters")):
        if pkg not in sys.modules:
            mod = types.ModuleType(pkg)
            mod.__path__ = [str(folder)]
            sys.modules[pkg] = mod
    spec = importlib.util.spec_from_file_location(
        name,
        REPO / "adapters" / "kernels" / "__init__.py",
        submodule_search_locations=[str(REPO / "adapters" / "kernels")],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    sys.modules["zoo.adapters"].kernels = module
    return module


# ------------------------------------------------------------------------------------------ inputs
class Problem:
    """One shape and rank; every variant reads the same tensors."""

    def __init__(self, t: int, d_in: int, d_out: int, r: int, seed: int = 0) -> None:
        g = torch.Generator(device="cuda").manual_seed(seed)
        kw = {"device": "cuda", "generator": g}
        self.t, self.d_in, self.d_out, self.r = t, d_in, d_out, r
        self.scaling = ALPHA_OVER_R
        self.x = torch.randn(t, d_in, **kw).bfloat16().requires_grad_()
        self.weight = (torch.randn(d_out, d_in, **kw) / d_in**0.5).bfloat16()
        self.lora_A = (torch.randn(r, d_in, **kw) / d_in**0.5).bfloat16().requires_grad_()
        self.lora_B = (torch.randn(d_out, r, **kw) * 0.02).bfloat16().requires_grad_()
        self.dy = torch.randn(t, d_out, **kw).bfloat16()
        self.supports = {}
        for density in DENSITIES:
            nnz = max(1, int(round(density * d_in * d_out)))
            flat = torch.randperm(d_in * d_out, device="cuda", generator=g)[:nnz]
            index = torch.stack([flat // d_in, flat % d_in])
            values = (torch.randn(nnz, **kw) * 0.02).requires_grad_()
            self.supports[density] = (index, values)
        flat = torch.randperm(d_in * d_out, device="cuda", generator=g)[:DSEE_NNZ]
        self.supports["dsee"] = (
            torch.stack([flat // d_in, flat % d_in]),
            (torch.randn(DSEE_NNZ, **kw) * 0.02).requires_grad_(),
        )

    def params(self, *tensors: Tensor | None) -> list[Tensor]:
        return [t for t in tensors if t is not None]


def dense_s(index: Tensor, values: Tensor, shape: tuple[int, int], dtype: torch.dtype) -> Tensor:
    return torch.zeros(shape, device=values.device, dtype=dtype).index_put(tuple(index), values.to(dtype))


def make_variants(
    p: Problem, kernels: types.ModuleType
) -> dict[str, tuple[Callable[[], Tensor], list[Tensor]]]:
    """name -> (forward closure, tensors whose grads the backward must produce)."""
    f = kernels.sparse_lora_linear
    x, w, a, b, s = p.x, p.weight, p.lora_A, p.lora_B, p.scaling
    idx_lo, val_lo = p.supports[DENSITIES[0]]
    idx_hi, val_hi = p.supports[DENSITIES[1]]
    idx_ds, val_ds = p.supports["dsee"]
    peft_layer = build_peft_lora(p)
    v = {
        "base (frozen linear)": (lambda: nn.functional.linear(x, w), [x]),
        "fused LoRA": (lambda: f(x, w, None, a, b, s, None, None), [x, a, b]),
        f"fused LoRA+S N={DSEE_NNZ} (DSEE)": (
            lambda: f(x, w, None, a, b, s, idx_ds, val_ds),
            [x, a, b, val_ds],
        ),
        f"fused LoRA+S {DENSITIES[0]:.1%}": (
            lambda: f(x, w, None, a, b, s, idx_lo, val_lo),
            [x, a, b, val_lo],
        ),
        f"fused LoRA+S {DENSITIES[1]:.1%}": (
            lambda: f(x, w, None, a, b, s, idx_hi, val_hi),
            [x, a, b, val_hi],
        ),
        "peft LoRA (bf16 adapters)": (lambda: peft_layer(x), [x, *peft_params(peft_layer)]),
        f"unfused dense-masked LoRA+S {DENSITIES[1]:.1%}": (
            lambda: (
                nn.functional.linear(x, w)
                + s * ((x @ a.t()) @ b.t())
                + x @ dense_s(idx_hi, val_hi, w.shape, torch.bfloat16).t()
            ),
            [x, a, b, val_hi],
        ),
        f"merged weight W+sBA+S {DENSITIES[1]:.1%} (autograd)": (
            lambda: nn.functional.linear(
                x, w + s * (b @ a) + dense_s(idx_hi, val_hi, w.shape, torch.bfloat16)
            ),
            [x, a, b, val_hi],
        ),
    }
    return v


def build_peft_lora(p: Problem) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(p.d_in, p.d_out, bias=False, device="cuda", dtype=torch.bfloat16)

    holder = Holder()
    holder.proj.weight.data.copy_(p.weight)
    cfg = LoraConfig(r=p.r, lora_alpha=int(ALPHA_OVER_R * p.r), lora_dropout=0.0, target_modules=["proj"])
    model = get_peft_model(holder, cfg).to(torch.bfloat16)  # bf16 adapters, as in the baseline
    layer = model.base_model.model.proj
    with torch.no_grad():
        layer.lora_A["default"].weight.copy_(p.lora_A)
        layer.lora_B["default"].weight.copy_(p.lora_B)
    return layer


def peft_params(layer: nn.Module) -> list[Tensor]:
    return [layer.lora_A["default"].weight, layer.lora_B["default"].weight]


# ------------------------------------------------------------------------------------- correctness
def reference_grads(p: Problem, index: Tensor | None, values: Tensor | None) -> list[Tensor]:
    """fp32 dense maths (fine for a checker): y, dx, dA, dB (, dvalues)."""
    x, w, a, b = p.x.detach().float(), p.weight.float(), p.lora_A.detach().float(), p.lora_B.detach().float()
    dy = p.dy.float()
    w_eff = w + p.scaling * (b @ a)
    if index is not None:
        w_eff = w_eff.index_put(tuple(index), values.detach().float(), accumulate=True)
    y = x @ w_eff.t()
    g = p.scaling * (dy @ b)
    out = [y, dy @ w_eff, g.t() @ x, p.scaling * (dy.t() @ (x @ a.t()))]
    if index is not None:
        out.append((dy.t() @ x)[index[0], index[1]])
    return out


def max_rel_error(got: Tensor, want: Tensor) -> float:
    return ((got.float() - want).abs().max() / want.abs().max().clamp_min(1e-6)).item()


def check_fused(p: Problem, kernels: types.ModuleType, tol: float = 2e-2) -> list[str]:
    """Fused output and gradients vs fp32 maths on the timed inputs; returns failure lines."""
    failures = []
    cases = [("LoRA", None, None), (f"LoRA+S N={DSEE_NNZ}", *p.supports["dsee"])]
    cases += [(f"LoRA+S {d:.1%}", *p.supports[d]) for d in DENSITIES]
    for label, index, values in cases:
        params = p.params(p.x, p.lora_A, p.lora_B, values)
        y = kernels.sparse_lora_linear(p.x, p.weight, None, p.lora_A, p.lora_B, p.scaling, index, values)
        grads = torch.autograd.grad(y, params, p.dy)
        want = reference_grads(p, index, values)
        for name, got, ref in zip(("y", "dx", "dA", "dB", "dvalues"), (y, *grads), want):
            err = max_rel_error(got, ref)
            if not (err <= tol):  # also catches NaN
                failures.append(f"  {label:<14} {name:<8} max error / max |ref| = {err:.2e} > {tol:.0e}")
    return failures


def sweep_small_shapes(kernels: types.ModuleType, dtypes: tuple[torch.dtype, ...]) -> list[str]:
    """Ragged shapes, ranks 1..256, nnz 0..5000 (both sparse modes), vs float64; fixed GEMM config so the
    sweep does not spend its time tuning."""
    import os

    saved = os.environ.get("ZOO_SPARSE_LORA_AUTOTUNE")
    os.environ["ZOO_SPARSE_LORA_AUTOTUNE"] = "0"
    try:
        return _sweep(kernels, dtypes)
    finally:
        if saved is None:
            del os.environ["ZOO_SPARSE_LORA_AUTOTUNE"]
        else:
            os.environ["ZOO_SPARSE_LORA_AUTOTUNE"] = saved


def _sweep(kernels: types.ModuleType, dtypes: tuple[torch.dtype, ...]) -> list[str]:
    failures = []
    g = torch.Generator(device="cuda").manual_seed(123)
    tol = {torch.float32: 1e-4, torch.float16: 5e-3, torch.bfloat16: 2e-2}
    cases = [
        ((3, 67), 129, 95, 1, 0),
        ((301,), 200, 333, 7, 16),
        ((2, 150), 257, 130, 20, 128),
        ((513,), 96, 160, 256, 900),
        ((77,), 1000, 520, 64, 5000),
    ]
    for dtype in dtypes:
        # every case in bf16 (the dtype that matters); one tiny-support and one large-support case otherwise
        for lead, d_in, d_out, r, nnz in cases if dtype == torch.bfloat16 else cases[1::3]:
            x = torch.randn(*lead, d_in, device="cuda", generator=g).to(dtype).requires_grad_()
            w = (torch.randn(d_out, d_in, device="cuda", generator=g) / d_in**0.5).to(dtype)
            bias = torch.randn(d_out, device="cuda", generator=g).to(dtype).requires_grad_()
            a = (torch.randn(r, d_in, device="cuda", generator=g) * 0.1).to(dtype).requires_grad_()
            b = (torch.randn(d_out, r, device="cuda", generator=g) * 0.1).to(dtype).requires_grad_()
            flat = torch.randperm(d_in * d_out, device="cuda", generator=g)[:nnz]
            idx = torch.stack([flat // d_in, flat % d_in])
            vals = (torch.randn(nnz, device="cuda", generator=g) * 0.1).requires_grad_()
            params = [x, bias, a, b, vals]
            y = kernels.sparse_lora_linear(x, w, bias, a, b, 0.5, idx, vals)
            dy = torch.randn_like(y)
            got = [y, *torch.autograd.grad(y, params, dy)]
            ref_in = [t.detach().double().requires_grad_() for t in params]
            yr = kernels.sparse_lora_linear_reference(
                ref_in[0], w.double(), ref_in[1], ref_in[2], ref_in[3], 0.5, idx, ref_in[4]
            )
            want = [yr, *torch.autograd.grad(yr, ref_in, dy.double(), allow_unused=True)]
            for name, gt, wt in zip(("y", "dx", "dbias", "dA", "dB", "dvalues"), got, want):
                if wt is None or wt.numel() == 0:
                    continue
                err = ((gt.double() - wt).abs().max() / wt.abs().max().clamp_min(1.0)).item()
                if not (err <= tol[dtype]):
                    failures.append(
                        f"  {str(dtype):<14} {lead}x{d_in}->{d_out} r={r} nnz={nnz} {name}: {err:.2e}"
                    )
    return failures


# ------------------------------------------------------------------------------------------ timing
def time_fwd_bwd(
    fn: Callable[[], Tensor], params: list[Tensor], dy: Tensor, warmup: int, iters: int
) -> float:
    """Median ms of forward + backward over ``iters`` back-to-back runs, each bracketed by CUDA events.

    No synchronisation between runs (as in training), so host-side launch overhead shows up only when it
    exceeds the GPU time of a run."""

    def step() -> None:
        for t in params:
            t.grad = None
        fn().backward(dy)

    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    events = [
        (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)
    ]
    for start, end in events:
        start.record()
        step()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in events)


def profile_fused(p: Problem, kernels: types.ModuleType) -> None:
    """Per-kernel CUDA time (us per forward + backward) of the fused variants."""
    from torch.profiler import ProfilerActivity, profile

    for name, (fn, params) in make_variants(p, kernels).items():
        if not name.startswith("fused"):
            continue
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                for t in params:
                    t.grad = None
                fn().backward(p.dy)
            torch.cuda.synchronize()
        rows = sorted(
            ((e.key, e.device_time_total / 5) for e in prof.key_averages() if e.device_time_total > 0),
            key=lambda kv: -kv[1],
        )
        print(f"  profile {name}: " + "; ".join(f"{k[:40]} {us:.0f}us" for k, us in rows[:12]))


def report_targets(results: dict[tuple, dict[str, float]], names: list[str]) -> bool:
    """The issue's targets, each printed as met / NOT met (the exit status does not depend on them)."""
    lora, dsee = "fused LoRA", f"fused LoRA+S N={DSEE_NNZ} (DSEE)"
    s_lo, s_hi = (f"fused LoRA+S {d:.1%}" for d in DENSITIES)
    peft, unfused = "peft LoRA (bf16 adapters)", f"unfused dense-masked LoRA+S {DENSITIES[1]:.1%}"
    checks = []
    for key, limits in (
        ((8192, 4096, 4096, 16), {lora: 1.15, dsee: 1.18, s_lo: 1.35, s_hi: 1.7}),
        ((8192, 4096, 11008, 16), {lora: 1.10, dsee: 1.12}),
    ):
        if key in results:
            base = results[key][names[0]]
            for col, limit in limits.items():
                checks.append(
                    (
                        f"{key[0]}x{key[1]}x{key[2]} {col}",
                        results[key][col] / base,
                        f"<= {limit:.2f}x",
                        results[key][col] / base <= limit,
                    )
                )
    for key, row in results.items():
        shape = f"{key[0]}x{key[1]}x{key[2]} r={key[3]}"
        checks.append((f"{shape} LoRA vs peft", row[lora] / row[peft], "<= 1.00", row[lora] <= row[peft]))
        for col in (s_lo, s_hi):
            checks.append(
                (
                    f"{shape} {col[-4:].strip()} vs unfused",
                    row[col] / row[unfused],
                    "<= 1.00",
                    row[col] <= row[unfused],
                )
            )
    print("\ntargets:")
    for label, value, target, good in checks:
        print(f"  {label:<52} {value:6.2f}x  target {target:<9} {'met' if good else 'NOT met'}")
    return True


def host_vs_gpu(p: Problem, kernels: types.ModuleType, steps: int = 20) -> None:
    """Per forward + backward: host time to issue it (no sync inside the loop, so the GPU queue absorbs
    the work) and GPU busy time (sum of kernel times from the profiler)."""
    import time

    from torch.profiler import ProfilerActivity, profile

    for name, (fn, params) in make_variants(p, kernels).items():
        if not (name.startswith("fused") or name.startswith("peft")):
            continue

        def step(fn=fn, params=params) -> None:
            for t in params:
                t.grad = None
            fn().backward(p.dy)

        step()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        host_ms = (time.perf_counter() - t0) * 1e3 / steps
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                step()
            torch.cuda.synchronize()
        gpu_ms = sum(e.self_device_time_total for e in prof.key_averages()) / 1e3 / steps
        print(f"  host vs GPU {name[:40]:<40} host {host_ms:6.3f} ms  GPU {gpu_ms:6.3f} ms per step")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only 8192x4096x4096 at r=16")
    ap.add_argument("--iters", type=int, default=50, help="timed runs per variant (median reported)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--no-autotune", action="store_true", help="fixed GEMM config instead of a 3-config tune")
    ap.add_argument("--skip-sweep", action="store_true", help="skip the small-shape correctness sweep")
    ap.add_argument(
        "--profile", action="store_true", help="also print per-kernel CUDA time of the fused variants"
    )
    args = ap.parse_args(argv)

    if not torch.cuda.is_available():
        print(
            "sparse_lora benchmark: needs a CUDA GPU (the CPU path is the plain-torch reference)",
            file=sys.stderr,
        )
        return 2
    import os

    if args.no_autotune:
        os.environ["ZOO_SPARSE_LORA_AUTOTUNE"] = "0"
    kernels = load_kernels()
    import triton

    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}  triton {triton.__version__}")
    print(
        f"fused base GEMM: {os.environ.get('ZOO_SPARSE_LORA_BASE', 'cublas')}  "
        f"autotune: {os.environ.get('ZOO_SPARSE_LORA_AUTOTUNE', '1') != '0'}"
    )
    ok = True
    if not args.skip_sweep:
        dtypes = (torch.bfloat16,) if args.quick else (torch.float32, torch.float16, torch.bfloat16)
        fails = sweep_small_shapes(kernels, dtypes)
        print(f"correctness sweep, small ragged shapes vs float64: {'FAIL' if fails else 'ok'}")
        print("\n".join(fails)) if fails else None
        ok &= not fails

    shapes = SHAPES[:1] if args.quick else SHAPES
    ranks = RANKS[:1] if args.quick else RANKS
    results: dict[tuple, dict[str, float]] = {}
    paths: dict[tuple, dict[str, str]] = {}
    for t, d_in, d_out in shapes:
        for r in ranks:
            p = Problem(t, d_in, d_out, r)
            fails = check_fused(p, kernels)
            print(
                f"correctness on the timed inputs T={t} in={d_in} out={d_out} r={r}: {'FAIL' if fails else 'ok'}"
            )
            print("\n".join(fails)) if fails else None
            ok &= not fails
            row, path = {}, {}
            for name, (fn, params) in make_variants(p, kernels).items():
                row[name] = time_fwd_bwd(fn, params, p.dy, args.warmup, args.iters)
                if name.startswith("fused"):
                    path[name] = kernels.dispatch.last_path
            results[(t, d_in, d_out, r)] = row
            paths[(t, d_in, d_out, r)] = path
            print("  ms: " + ", ".join(f"{n} {ms:.3f}" for n, ms in row.items()))
            if args.profile:
                profile_fused(p, kernels)
                host_vs_gpu(p, kernels)
            del p
            torch.cuda.empty_cache()

    names = list(next(iter(results.values())).keys())
    print(
        f"\nforward+backward time / frozen base layer (median of {args.iters} after {args.warmup} warm-up; bf16)"
    )
    header = f"{'T x in x out':<20}{'r':>4}{'base ms':>9}" + "".join(f"{n[:22]:>24}" for n in names[1:])
    print(header + "  path (LoRA / DSEE / S lo / S hi)")
    for key, row in results.items():
        t, d_in, d_out, r = key
        base = row[names[0]]
        cells = "".join(f"{row[n] / base:>23.2f}x" for n in names[1:])
        print(f"{f'{t}x{d_in}x{d_out}':<20}{r:>4}{base:>9.3f}{cells}  {' / '.join(paths[key].values())}")
    print("columns: " + "; ".join(names[1:]))
    print("\ndispatcher picks (ms per forward + backward of each candidate, timed on the first call):")
    for key, (best, times) in kernels.dispatch.picks().items():
        shape = f"T~{key[2]} in={key[3]} out={key[4]} r={key[5]} nnz={key[6]}"
        print(f"  {shape:<44} -> {best:<14} " + ", ".join(f"{p} {ms:.3f}" for p, ms in times.items()))
    ok &= report_targets(results, names)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
