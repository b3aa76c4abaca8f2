"""What the longformer family (`zoo.families.LONGFORMER`) adds to transformers' Longformer classes.

Longformer attends within a sliding window (`attention_window` tokens, a model config key) plus a few
*global* tokens that attend to and are attended by every position (BudgetLongformer: the first token).
Its attention takes only a `[B, L]` mask (0 = padding, 1 = local, 2 = global), never the 4D
block-diagonal mask that isolates packed documents (`zoo.packing`). So the family does not pack: each
pretraining block is one window of one document (`zoo.packing.window_documents`), padded at its end,
and `window_inputs` refuses a block holding two documents instead of letting them attend to each other.

Positions follow RoBERTa, which Longformer inherits: position ids start at `pad_token_id + 1` (the row
`pad_token_id` of the position table is the padding row), so a model needs
`max_position_embeddings >= seq_len + pad_token_id + 1`; the legal domain sizes it for 4,096 tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import LongformerForMultipleChoice as _HFMultipleChoice

from zoo.errors import UserError


def _config(model: Any) -> Any:
    return getattr(model, "module", model).config


def window_inputs(model: Any, batch: Mapping[str, torch.Tensor], causal: bool) -> dict[str, torch.Tensor]:
    """Attention mask (global attention on each block's first token) and RoBERTa-style positions."""
    if causal:
        raise UserError("the longformer family is an encoder; use a masked objective (mlm, rtd), not clm")
    doc_ids = batch["doc_ids"]
    if bool((doc_ids > 0).any()):
        raise ValueError(
            "a Longformer block holds more than one document: its attention cannot isolate them; "
            "build the blocks with zoo.packing.window_documents"
        )
    cfg = _config(model)
    real = doc_ids >= 0
    offset = cfg.pad_token_id + 1
    positions = torch.where(real, batch["position_ids"] + offset, cfg.pad_token_id)
    if int(positions.max()) >= cfg.max_position_embeddings:
        raise UserError(
            f"data.seq_len {doc_ids.shape[1]} needs {doc_ids.shape[1] + offset} Longformer positions, the model "
            f"has {cfg.max_position_embeddings}; set model.max_position_embeddings or a shorter data.seq_len"
        )
    global_mask = torch.zeros_like(doc_ids)
    global_mask[:, 0] = 1
    return {"attention_mask": real.long(), "global_attention_mask": global_mask, "position_ids": positions}


class LongformerForMultipleChoice(_HFMultipleChoice):
    """transformers' multiple-choice head with global attention on each candidate's first token.

    The upstream class, given no global mask, puts global attention on the question found between
    three separator tokens (RoBERTa's `</s></s>` pair template) and fails on any other template, such
    as the zoo's `[CLS] A [SEP] B [SEP]`. Saved under the upstream name, so it reloads as the upstream
    class (which is then given its global mask by the caller).
    """

    def forward(self, input_ids: Any = None, global_attention_mask: Any = None, **kwargs: Any) -> Any:
        if global_attention_mask is None and input_ids is not None:
            global_attention_mask = torch.zeros_like(input_ids)
            global_attention_mask[..., 0] = 1
        return super().forward(input_ids=input_ids, global_attention_mask=global_attention_mask, **kwargs)
