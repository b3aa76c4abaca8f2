"""Fused sparse-plus-low-rank linear layer (DSEE's update): Triton kernels on CUDA (and on CPU under
``TRITON_INTERPRET=1``), a plain-torch reference everywhere else. triton is imported lazily, so this
package works on CPU-only installs without it."""

from .module import SparseLoRALinear
from .op import backend_for, sparse_lora_linear
from .reference import sparse_lora_linear_reference

__all__ = ["SparseLoRALinear", "backend_for", "sparse_lora_linear", "sparse_lora_linear_reference"]
