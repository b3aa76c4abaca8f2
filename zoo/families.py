"""Model families (entry-point group `zoo.families`): a config class and the head classes built on it.

A family turns a domain's `ModelSpec.config` plus the tokenizer into a fresh model with the head a
recipe asks for ('masked_lm', 'causal_lm', 'token_classification', …). Nothing is downloaded: models
are built from configs, or loaded from a run's `model/`. A family whose config or head classes live
outside transformers names them as 'pkg.module:Class'. Composite models (an ELECTRA generator +
discriminator pair) are built by their objective from a family's heads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zoo.errors import UserError
from zoo.registry import Registry


def _resolve(name: str) -> Any:
    if ":" in name:
        from zoo.registry import load_target

        return load_target(name, "")
    import transformers

    return getattr(transformers, name)


@dataclass(frozen=True)
class ModelFamily:
    name: str
    config_class: str
    """A transformers class name ('BertConfig') or 'pkg.module:Class'."""
    heads: Mapping[str, str]
    """Head name → model class name (transformers or 'pkg.module:Class'); 'base' = no head."""
    dropout_keys: tuple[str, ...] = ()
    """Config keys the zoo's `model.dropout` sets."""
    token_id_keys: Mapping[str, str] = field(default_factory=dict)
    """Config key → tokenizer attribute copied into a fresh config (e.g. bos_token_id)."""
    layers: str = ""
    """Path of the transformer block list inside the backbone (`model.base_model`), e.g. 'encoder.layer';
    '' where the family has none that adapters may hook."""
    ffn_input: str = ""
    """Module inside a block whose first input is the FFN input (a parallel adapter reads it)."""
    ffn_output: str = ""
    """Module inside a block whose output is the FFN output before the residual (adapters add to it)."""
    prefix_cache: bool = False
    """The backbone takes a key/value cache (`past_key_values`) that prefix-tuning can fill."""
    window_inputs: str | None = None
    """For a family whose attention cannot take the packed block-diagonal mask (Longformer's sliding
    window takes only a [B, L] mask): 'pkg.module:func' mapping (model, batch, causal) to the attention
    keywords of a pretraining forward. Its pretraining blocks then hold one window of one document each
    (`zoo.packing.window_documents`), never two documents. None: packed blocks, `zoo.packing` masks."""

    @property
    def packs(self) -> bool:
        """Whether pretraining packs several documents into one block (isolated by the attention mask)."""
        return self.window_inputs is None

    @property
    def windowed(self) -> bool:
        """Whether its config takes `attention_window` (sliding-window attention)."""
        return hasattr(_resolve(self.config_class)(), "attention_window")

    def window_forward_inputs(self, model: Any, batch: Mapping[str, Any], causal: bool) -> dict[str, Any]:
        """The attention keywords (mask, positions) of a pretraining forward on one-window blocks."""
        if self.window_inputs is None:
            raise ValueError(f"model family '{self.name}' packs; its mask comes from zoo.packing")
        return _resolve(self.window_inputs)(model, batch, causal)

    def head_class(self, head: str) -> Any:
        if head not in self.heads:
            raise UserError(
                f"model family '{self.name}' has no '{head}' head (it has: {', '.join(self.heads)}); "
                "choose a domain model of another family for this task"
            )
        return _resolve(self.heads[head])

    def model_type(self) -> str:
        """The `model_type` its config class writes into config.json ('bert', 'llama', …)."""
        return str(_resolve(self.config_class).model_type)

    def config(self, kwargs: Mapping[str, Any], tokenizer: Any) -> Any:
        """A fresh HF config sized by `kwargs`, with the tokenizer's vocabulary and special ids."""
        values = dict(kwargs)
        values["vocab_size"] = len(tokenizer)
        values["pad_token_id"] = tokenizer.pad_token_id
        for key, attr in self.token_id_keys.items():
            values.setdefault(key, getattr(tokenizer, attr))
        if "dropout" in values:
            value = values.pop("dropout")
            for key in self.dropout_keys:
                values[key] = value
        return _resolve(self.config_class)(**values)

    def build(self, head: str, kwargs: Mapping[str, Any], tokenizer: Any, seed: int = 0) -> Any:
        """A randomly initialised model (seeded: two builds with one seed are identical)."""
        import torch

        cfg = self.config(kwargs, tokenizer)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.head_class(head)(cfg)


BERT = ModelFamily(
    name="bert",
    config_class="BertConfig",
    heads={
        "masked_lm": "BertForMaskedLM",
        "token_classification": "BertForTokenClassification",
        "sequence_classification": "BertForSequenceClassification",
        "multiple_choice": "BertForMultipleChoice",
        "base": "BertModel",
    },
    dropout_keys=("hidden_dropout_prob", "attention_probs_dropout_prob"),
    layers="encoder.layer",
    ffn_input="intermediate",
    ffn_output="output.dense",
    prefix_cache=True,
)

LLAMA = ModelFamily(
    name="llama",
    config_class="LlamaConfig",
    heads={
        "causal_lm": "LlamaForCausalLM",
        "token_classification": "LlamaForTokenClassification",
        "sequence_classification": "LlamaForSequenceClassification",
        "base": "LlamaModel",
    },
    dropout_keys=("attention_dropout",),
    token_id_keys={"bos_token_id": "bos_token_id", "eos_token_id": "eos_token_id"},
    layers="layers",
    ffn_input="mlp",
    ffn_output="mlp",
    prefix_cache=True,
)

LONGFORMER = ModelFamily(
    name="longformer",
    config_class="LongformerConfig",
    heads={
        "masked_lm": "LongformerForMaskedLM",
        "token_classification": "LongformerForTokenClassification",
        "sequence_classification": "LongformerForSequenceClassification",
        "multiple_choice": "zoo.longformer:LongformerForMultipleChoice",
        "base": "LongformerModel",
    },
    dropout_keys=("hidden_dropout_prob", "attention_probs_dropout_prob"),
    token_id_keys={
        "sep_token_id": "sep_token_id",
        "bos_token_id": "cls_token_id",
        "eos_token_id": "sep_token_id",
    },
    window_inputs="zoo.longformer:window_inputs",
    layers="encoder.layer",
    ffn_input="intermediate",
    ffn_output="output.dense",
)


def _check_family(obj: Any) -> ModelFamily:
    if not isinstance(obj, ModelFamily):
        raise TypeError(f"{obj!r} is a {type(obj).__name__}, not a zoo.families.ModelFamily")
    return obj


FAMILIES: Registry[ModelFamily] = Registry("zoo.families", "model family", _check_family, "FAMILY")


def get_family(name: str) -> ModelFamily:
    return FAMILIES.get(name)


def family_of(model: Any) -> ModelFamily:
    """The registered family whose config class built `model` (matched on the config's model_type)."""
    model_type = getattr(model.config, "model_type", None)
    for name in FAMILIES.names():
        family = FAMILIES.get(name)
        if family.model_type() == model_type:
            return family
    raise UserError(
        f"no registered model family builds '{model_type}' models (families: {', '.join(FAMILIES.names())})"
    )


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


T5 = ModelFamily(
    name="t5",
    config_class="zoo.families_t5:t5_config",
    heads={
        "span_corruption": "T5ForConditionalGeneration",
        # The encoder with a head: see zoo.families_t5 for why not T5ForSequenceClassification.
        "sequence_classification": "zoo.families_t5:T5EncoderForSequenceClassification",
        "token_classification": "T5ForTokenClassification",
        "base": "T5EncoderModel",
    },
    dropout_keys=("dropout_rate",),
    token_id_keys={"eos_token_id": "eos_token_id", "decoder_start_token_id": "pad_token_id"},
    layers="encoder.block",
    ffn_input="layer.1.DenseReluDense",  # T5LayerFF: x + DenseReluDense(layer_norm(x))
    ffn_output="layer.1.DenseReluDense",
)
