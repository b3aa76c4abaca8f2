"""Tuning methods: full, lora, dsee, emoe (and kernels/ for the fused sparse-LoRA kernel)."""
