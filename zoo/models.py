"""Build transformers models from a domain's ModelSpec (from config: nothing is downloaded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

Head = Literal["masked_lm", "causal_lm", "token_classification", "sequence_classification", "base"]

# family -> (config class, {head: model class}) as dotted names inside transformers.
_FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "bert": (
        "BertConfig",
        {
            "masked_lm": "BertForMaskedLM",
            "token_classification": "BertForTokenClassification",
            "sequence_classification": "BertForSequenceClassification",
            "base": "BertModel",
        },
    ),
    "llama": (
        "LlamaConfig",
        {
            "causal_lm": "LlamaForCausalLM",
            "token_classification": "LlamaForTokenClassification",
            "sequence_classification": "LlamaForSequenceClassification",
            "base": "LlamaModel",
        },
    ),
}


def quiet_transformers() -> None:
    """The zoo reports progress itself: silence transformers' per-load reports, bars and warnings
    (a pretraining head dropped for a task head, documents longer than model_max_length, …) and
    accelerate's note that tied embeddings are saved once."""
    import logging
    import warnings

    import transformers

    # Deprecation notices raised inside transformers/peft about their own APIs are not actionable here.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")
    logging.getLogger("accelerate").setLevel(logging.ERROR)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def model_class(family: str, head: Head) -> Any:
    import transformers

    from zoo.errors import UserError

    if family not in _FAMILIES:
        raise UserError(f"model family '{family}' is not supported yet (supported: {', '.join(_FAMILIES)})")
    heads = _FAMILIES[family][1]
    if head not in heads:
        raise UserError(f"model family '{family}' has no '{head}' head (available: {', '.join(heads)})")
    return getattr(transformers, heads[head])


def build_config(family: str, config: Mapping[str, Any], tokenizer: Any) -> Any:
    """A fresh HF config for `family`, sized by `config`, with the tokenizer's vocab and special ids."""
    import transformers

    cls = getattr(transformers, _FAMILIES[family][0])
    kwargs = dict(config)
    kwargs["vocab_size"] = len(tokenizer)
    kwargs["pad_token_id"] = tokenizer.pad_token_id
    if family == "llama":
        kwargs.setdefault("bos_token_id", tokenizer.bos_token_id)
        kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    return cls(**kwargs)


def build_model(family: str, config: Mapping[str, Any], tokenizer: Any, head: Head, seed: int = 0) -> Any:
    """A randomly initialised model (seeded, so two builds with one seed are identical)."""
    import torch

    cfg = build_config(family, config, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(family, head)(cfg)


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
