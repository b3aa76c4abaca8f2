"""Which implementation a sparse-LoRA call runs: the path, picked by shape, rank and support size.

Paths:
- ``reference``  plain torch in fp32 (:mod:`.reference`): CPU, float64, anything else.
- ``triton``     the Triton kernels (:mod:`.triton_sparse_lora`); on CPU only under TRITON_INTERPRET=1.
- ``cublas``     a few cuBLAS calls with a hand-written backward (:mod:`.composed`).
- ``autograd``   the same products as differentiable ops: autograd's C++ engine runs the backward, so
                 the least host time per call.
- ``lowrank``    a support as N more rank-one terms of the LoRA factors, then the LoRA path picked for
                 rank r + N (DSEE-sized supports).
- ``split``      a support as one more dense product each way (larger supports).

On CUDA no fixed threshold decides: the first call of each (device, dtype, token bucket, in, out, r, nnz)
times every candidate on the real inputs, forward + backward through autograd as in training (so host
overhead counts where it exceeds GPU time), and keeps the fastest. The pick is logged at debug level on
the ``zoo.kernels`` logger and listed by :func:`picks`. ``ZOO_SPARSE_LORA_PATH`` forces a path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
from torch import Tensor

from . import composed, reference

LOG = logging.getLogger("zoo.kernels")
PATHS = ("reference", "triton", "cublas", "autograd", "lowrank", "split")
_FUSED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_PICKS: dict[tuple, tuple[str, dict[str, float]]] = {}
_TIMING: dict[tuple, str] = {}  # the candidate being timed, per key
last_path: str | None = None
"""The path of the most recent call (what ``SparseLoRALinear.last_backend`` reports)."""


def triton_interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_module():
    """The Triton implementation, or None when triton is not installed (CPU-only installs)."""
    try:
        from . import triton_sparse_lora
    except ImportError:
        return None
    return triton_sparse_lora


def backend_for(x: Tensor) -> str:
    """``"triton"`` where the fused paths can run on ``x`` (CUDA, or CPU under the interpreter), else
    ``"reference"``."""
    if x.dtype not in _FUSED_DTYPES or x.shape[0] == 0:
        return "reference"
    if x.is_cuda or (x.device.type == "cpu" and triton_interpreting()):
        return "triton" if triton_module() is not None else "reference"
    return "reference"


def candidates(nnz: int) -> list[str]:
    """The paths that can serve a support of ``nnz`` entries (the first is the pick where nothing can
    be timed: inside a CUDA graph capture or torch.compile)."""
    if nnz == 0:
        return ["cublas", "autograd", "triton"]
    if nnz <= composed.LOWRANK_MAX_NNZ:
        return ["lowrank", "split", "triton"]
    return ["split", "triton"]


def _forced(nnz: int) -> str | None:
    forced = os.environ.get("ZOO_SPARSE_LORA_PATH", "")
    if not forced:
        return None
    if forced not in PATHS:
        raise ValueError(f"ZOO_SPARSE_LORA_PATH must be one of {', '.join(PATHS)}; got {forced!r}")
    if forced in ("reference", "triton"):
        return forced
    allowed = candidates(nnz)
    if forced in allowed:
        return forced
    # a LoRA path asked for a layer with a support: the support goes low-rank (or split), and the
    # inner rank-(r + N) call honours the forced LoRA path
    return allowed[0]


def _key(x: Tensor, weight: Tensor, lora_A, sparse_index) -> tuple:
    t = x.shape[0]
    return (
        x.device,
        x.dtype,
        1 << max(0, t - 1).bit_length(),  # token bucket: batch shapes vary from step to step
        weight.shape[1],
        weight.shape[0],
        0 if lora_A is None else lora_A.shape[0],
        0 if sparse_index is None else sparse_index.shape[1],
    )


def choose(x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values) -> str:
    """The path of one call on a 2-D ``x`` (see the module docstring)."""
    nnz = 0 if sparse_index is None else sparse_index.shape[1]
    forced = _forced(nnz)
    if backend_for(x) == "reference":
        return forced if forced in ("cublas", "autograd", "lowrank", "split") else "reference"
    if forced is not None:
        return forced
    if not x.is_cuda:
        return "triton"  # CPU under the interpreter: the Triton kernels are what is being tested
    key = _key(x, weight, lora_A, sparse_index)
    if key in _TIMING:
        return _TIMING[key]
    hit = _PICKS.get(key)
    if hit is not None:
        return hit[0]
    cands = candidates(nnz)
    if torch.cuda.is_current_stream_capturing() or torch.compiler.is_compiling():
        return cands[0]
    args = (x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values)
    return pick_fastest(key, cands, lambda path: _time_path(key, path, args))


def pick_fastest(key: tuple, cands: list[str], time_ms: Callable[[str], float]) -> str:
    """Time each candidate once (``time_ms``), remember and log the fastest for ``key``."""
    times = {}
    for path in cands:
        try:
            times[path] = time_ms(path)
        except Exception as exc:  # a path that cannot run here (e.g. Triton on an old GPU) just loses
            LOG.debug("sparse-lora path %s failed while timing: %s", path, exc)
    best = min(times, key=times.get) if times else "reference"
    _PICKS[key] = (best, times)
    LOG.debug(
        "sparse-lora path %s for T~%d in=%d out=%d r=%d nnz=%d %s (ms: %s)",
        best,
        *key[2:7],
        str(key[1]).removeprefix("torch."),
        ", ".join(f"{p} {ms:.3f}" for p, ms in times.items()),
    )
    return best


def picks() -> dict[tuple, tuple[str, dict[str, float]]]:
    """Every pick made so far: key -> (path, {candidate: ms per forward + backward})."""
    return dict(_PICKS)


def _time_path(key: tuple, path: str, args: tuple, reps: int = 5) -> float:
    """ms per forward + backward of the public op forced onto ``path`` for ``key``."""
    from .op import linear_2d

    x, weight = args[0], args[1]
    dy = torch.randn(x.shape[0], weight.shape[0], device=x.device, dtype=x.dtype)
    # trainable inputs as fresh leaves (x, bias, A, B, values), so the backward runs as in training
    leaves = [
        t.detach().requires_grad_() if i in (0, 2, 3, 4, 7) and t is not None else t
        for i, t in enumerate(args)
    ]
    wrt = [t for i, t in enumerate(leaves) if i in (0, 2, 3, 4, 7) and t is not None]

    def once() -> None:
        with torch.enable_grad():
            torch.autograd.grad(linear_2d(*leaves), wrt, dy)

    _TIMING[key] = path
    try:
        for _ in range(2):  # Triton compiles (and tunes its GEMM) on the first call; inner picks happen
            once()
        torch.cuda.synchronize(x.device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            once()
        end.record()
        end.synchronize()
    finally:
        del _TIMING[key]
    return start.elapsed_time(end) / reps


# Inside the custom ops (torch.compile) the factors cannot be rebuilt differentiably, nor autograd
# run: there ``lowrank`` runs as ``split`` and ``autograd`` as ``cublas`` (the same products).
_SPLIT = ("split", "lowrank")


def forward(path: str, x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values):
    """``(y, v)`` by ``path`` (``triton``, ``reference``, else the cuBLAS composition)."""
    if path == "triton":
        return triton_module().forward(x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values)
    with torch.autocast(x.device.type, enabled=False):
        if path == "reference":
            return reference.reference_forward(
                x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values
            )
        return composed.forward(
            x, weight, bias, lora_A, lora_B, scaling, sparse_index, sparse_values, path in _SPLIT
        )


def backward(path: str, dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias):
    """``(dx, dA, dB, dvalues, dbias)`` by ``path`` (as :func:`forward`)."""
    if path == "triton":
        return triton_module().backward(
            dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias
        )
    with torch.autocast(x.device.type, enabled=False):
        if path == "reference":
            return reference.reference_backward(
                dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias
            )
        return composed.backward(
            dy, x, weight, lora_A, lora_B, scaling, sparse_index, sparse_values, v, need_bias, path in _SPLIT
        )
