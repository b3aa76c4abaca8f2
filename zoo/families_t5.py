"""The T5 family's pieces that transformers does not have in the zoo's shape.

- `t5_config`: a `T5Config` from the zoo's generic size keys (`model.hidden_size`, `num_hidden_layers`,
  `num_attention_heads`, `intermediate_size`, as every family takes them) or T5's own (`d_model`, `num_layers`,
  `num_decoder_layers`, `num_heads`, `d_ff`, `d_kv`). The decoder gets as many layers as the encoder unless
  `num_decoder_layers` says otherwise, and each head `d_model / num_heads` dimensions (T5's own default is
  64 whatever the width). T5 has relative position buckets, no position table: `max_position_embeddings`
  is dropped.
- `T5EncoderForSequenceClassification`: fine-tuning uses the T5 *encoder* with a classification head (mean
  of the encoder states over the real tokens → dropout → linear), the usual way to classify with a T5
  encoder (Sentence-T5's mean pooling). transformers' `T5ForSequenceClassification` runs the decoder too
  (its head reads the decoder state at </s>), which doubles the cost and needs the decoder weights; the
  encoder head loads from a pretrained `T5ForConditionalGeneration` checkpoint and ignores the decoder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import T5Config, T5EncoderModel
from transformers.modeling_outputs import SequenceClassifierOutput

_GENERIC = {
    "hidden_size": "d_model",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "d_ff",
}
_UNUSED = ("max_position_embeddings", "num_key_value_heads")


def t5_config(**kwargs: Any) -> T5Config:
    values = dict(kwargs)
    for generic, own in _GENERIC.items():
        if generic in values:
            values[own] = values.pop(generic)
    for key in _UNUSED:
        values.pop(key, None)
    values.setdefault("num_decoder_layers", values.get("num_layers", 6))
    if "d_model" in values and "num_heads" in values:
        values.setdefault("d_kv", values["d_model"] // values["num_heads"])
    return T5Config(**values)


t5_config.model_type = "t5"  # type: ignore[attr-defined]  # what ModelFamily.model_type() reads


class T5EncoderForSequenceClassification(T5EncoderModel):
    """T5 encoder + mean pooling + linear head; `problem_type` picks the loss as HF's heads do."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^lm_head\."]

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dropout = nn.Dropout(
            config.classifier_dropout if config.classifier_dropout else config.dropout_rate
        )
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is getattr(self, "classifier", None):
            module.weight.data.normal_(
                mean=0.0, std=self.config.initializer_factor * self.config.d_model**-0.5
            )
            module.bias.data.zero_()

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        kwargs.pop("token_type_ids", None)
        kwargs.pop("position_ids", None)
        out = super().forward(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
        )
        hidden = out.last_hidden_state
        if attention_mask is None:
            pooled = hidden.mean(1)
        else:
            weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else self._loss(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=out.hidden_states)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.problem_type == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        if self.config.problem_type == "regression" or self.num_labels == 1:
            return F.mse_loss(logits.squeeze(-1).float(), labels.float())
        return F.cross_entropy(logits.float(), labels.long())
