"""``SparseLoRALinear``: a frozen linear layer with a trainable LoRA pair and a sparse residual S on a
fixed support (DSEE's sparsity-embedded low-rank update), running on :func:`sparse_lora_linear`."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import dispatch
from .op import sparse_lora_linear


class SparseLoRALinear(nn.Module):
    """y = x·Wᵀ + b + (alpha/r)·(x·Aᵀ)·Bᵀ + x·Sᵀ.

    Trainable: ``lora_A`` (r, in), ``lora_B`` (out, r), ``sparse_values`` (nnz,). Frozen: ``weight``,
    ``bias``. ``sparse_index`` (2, nnz) int64 is a buffer. ``r=0`` gives a sparse-only layer and
    ``sparse_index=None`` a plain LoRA layer. B and S start at zero, so a fresh layer equals the base.
    """

    last_backend: str | None = None
    """The path the last eager forward ran (see :mod:`.dispatch`: ``triton``, ``lowrank/cublas``, …,
    ``reference``), None before one."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        r: int,
        alpha: float,
        *,
        bias: bool = True,
        sparse_index: Tensor | None = None,
        lora_init_std: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if r < 0:
            raise ValueError(f"rank r must be >= 0, got {r}")
        self.in_features, self.out_features, self.r = in_features, out_features, r
        self.alpha = float(alpha)
        self.scaling = self.alpha / r if r > 0 else 0.0
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.empty(out_features, in_features, **factory), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(out_features, **factory), requires_grad=False) if bias else None
        if r > 0:
            self.lora_A = nn.Parameter(torch.empty(r, in_features, **factory))
            self.lora_B = nn.Parameter(torch.zeros(out_features, r, **factory))
            self.reset_lora(lora_init_std)
        else:
            self.register_parameter("lora_A", None)
            self.register_parameter("lora_B", None)
        if sparse_index is not None:
            index = self._validated_index(sparse_index).to(device)
            self.register_buffer("sparse_index", index)
            # S is kept in fp32 whatever the layer dtype: small entries must not round away.
            self.sparse_values = nn.Parameter(torch.zeros(index.shape[1], device=device, dtype=torch.float32))
        else:
            self.register_buffer("sparse_index", None)
            self.register_parameter("sparse_values", None)
        self.merged = False

    def _validated_index(self, index: Tensor) -> Tensor:
        index = torch.as_tensor(index, dtype=torch.int64)
        if index.dim() != 2 or index.shape[0] != 2:
            raise ValueError(f"sparse_index must have shape (2, nnz), got {tuple(index.shape)}")
        if index.numel() and (
            index.min() < 0 or index[0].max() >= self.out_features or index[1].max() >= self.in_features
        ):
            raise ValueError(
                f"sparse_index out of range for a ({self.out_features}, {self.in_features}) weight"
            )
        return index.contiguous()

    def reset_lora(self, lora_init_std: float | None = None) -> None:
        """A like peft (kaiming-uniform, a=sqrt(5)) or N(0, std) (DSEE uses 0.02); B = 0."""
        if self.lora_A is None:
            return
        with torch.no_grad():
            if lora_init_std is None:
                nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            else:
                nn.init.normal_(self.lora_A, mean=0.0, std=lora_init_std)
            self.lora_B.zero_()

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        r: int,
        alpha: float,
        sparse_index: Tensor | None = None,
        *,
        lora_init_std: float | None = None,
    ) -> SparseLoRALinear:
        """Wrap ``linear``: its weight and bias are shared (not copied) and frozen."""
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            r,
            alpha,
            bias=linear.bias is not None,
            sparse_index=None if sparse_index is None else torch.as_tensor(sparse_index).to(w.device),
            lora_init_std=lora_init_std,
            device=w.device,
            dtype=w.dtype,
        )
        layer.weight = nn.Parameter(w.data, requires_grad=False)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.data, requires_grad=False)
        return layer

    @property
    def nnz(self) -> int:
        return 0 if self.sparse_index is None else int(self.sparse_index.shape[1])

    def delta_weight(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The dense update s·B·A + S as an (out, in) tensor, computed in fp32."""
        delta = torch.zeros(
            self.out_features, self.in_features, device=self.weight.device, dtype=torch.float32
        )
        if self.lora_A is not None:
            delta += self.scaling * (self.lora_B.float() @ self.lora_A.float())
        if self.sparse_index is not None:
            delta.index_put_(tuple(self.sparse_index), self.sparse_values.float(), accumulate=True)
        return delta.to(dtype)

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``weight`` (inference); the forward becomes a plain linear layer."""
        if self.merged:
            return
        self.weight.data = (self.weight.float() + self.delta_weight()).to(self.weight.dtype)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` (exact in fp32; within one rounding of W in bf16/fp16)."""
        if not self.merged:
            return
        self.weight.data = (self.weight.float() - self.delta_weight()).to(self.weight.dtype)
        self.merged = False

    def kernel_sparse_values(self) -> Tensor | None:
        """The S the kernel adds (x·Sᵀ); a subclass may rescale it (DSEE passes (alpha/r)·S2)."""
        return self.sparse_values

    def forward(self, x: Tensor) -> Tensor:
        if self.merged:
            return nn.functional.linear(x, self.weight, self.bias)
        y = sparse_lora_linear(
            x,
            self.weight,
            self.bias,
            self.lora_A,
            self.lora_B,
            self.scaling,
            self.sparse_index,
            self.kernel_sparse_values(),
        )
        if not torch.compiler.is_compiling():  # a Python side effect; under compile the op decides alike
            self.last_backend = dispatch.last_path
        return y

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
            f"alpha={self.alpha}, nnz={self.nnz}, bias={self.bias is not None}, merged={self.merged}"
        )
