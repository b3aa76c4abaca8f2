"""Tiny BERT and Llama models built from configs (no downloads), shared by the method tests."""

from __future__ import annotations

import torch
import transformers

IDS = torch.randint(1, 99, (2, 7), generator=torch.Generator().manual_seed(1))


def tiny_bert(seed: int = 0, token: bool = False) -> transformers.PreTrainedModel:
    """Sequence classification (3 labels); `token=True` gives the token-classification head instead."""
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    torch.manual_seed(seed)
    cls = transformers.BertForTokenClassification if token else transformers.BertForSequenceClassification
    return cls(cfg).eval()


def tiny_llama(
    seed: int = 0, kv_heads: int = 4, causal_lm: bool = False, token: bool = False
) -> transformers.PreTrainedModel:
    """Sequence classification (3 labels); `token=True` a token-classification head, `causal_lm` the LM."""
    cfg = transformers.LlamaConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        intermediate_size=48,
        max_position_embeddings=32,
        num_labels=3,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    if causal_lm:
        cls = transformers.LlamaForCausalLM
    else:
        cls = (
            transformers.LlamaForTokenClassification if token else transformers.LlamaForSequenceClassification
        )
    return cls(cfg).eval()


def tiny_t5(seed: int = 0) -> transformers.PreTrainedModel:
    """The clinical domain's fine-tuning model: a T5 encoder with a sequence-classification head (3 labels)."""
    from zoo.families_t5 import T5EncoderForSequenceClassification, t5_config

    cfg = t5_config(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=3,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
    )
    torch.manual_seed(seed)
    return T5EncoderForSequenceClassification(cfg).eval()


@torch.no_grad()
def out(model: torch.nn.Module) -> torch.Tensor:
    return model(input_ids=IDS).logits


def eager_flex_attention(monkeypatch) -> None:
    """Make transformers call torch's flex attention uncompiled (the CPU reference implementation):
    compiling it on a CPU needs a C++ toolchain and inductor's CPU flex template, which the tests of the
    zoo's block masks are not about (the GPU runs the compiled Triton kernel)."""
    from torch.nn.attention.flex_attention import flex_attention
    from transformers.integrations import flex_attention as hf_flex

    monkeypatch.setattr(hf_flex.WrappedFlexAttention, "__call__", lambda self: flex_attention)
