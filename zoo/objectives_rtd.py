"""ELECTRA replaced-token detection (Clark et al., ICLR 2020), as BudgetLongformer pretrains (arXiv 2211.17135).

    loss = generator MLM + discriminator_weight · discriminator BCE     (ELECTRA's λ = 50)

- **Generator**: a small masked LM (`ElectraForMaskedLM`) whose hidden size is `generator_size` × the
  discriminator's (ELECTRA: ¼–½ works best), with as many layers. It reads the MLM-masked input (the
  `mlm` objective's whole-word 15 %, 80/10/10 masking) and predicts the chosen tokens.
- **Sampling**: at every chosen position a token is drawn from the generator's softmax, by inverse CDF
  with a uniform number drawn in `collate` (so the batch stays a pure function of (seed, step)); nothing
  flows back through the sample. A sample equal to the original counts as original (ELECTRA's rule).
- **Discriminator**: the domain's model family with its token-classification head and one output per
  token (`ModelFamily.heads['token_classification']`, num_labels=1): for every real (non-pad) token,
  replaced or not, binary cross entropy.
- **Shared embeddings**: the generator's token, position and token-type tables *are* the
  discriminator's (the same `nn.Parameter`s, so one gradient from both losses); ELECTRA's
  `embedding_size` projection maps them to the generator's width, and its MLM output layer is tied to
  the shared token table. Positions are the family's (RoBERTa-style offsets for Longformer), given to both.

Only the discriminator is saved as `model/` (`export`), a plain `from_pretrained`-loadable
`<Family>ForTokenClassification`; fine-tuning loads its encoder. The loss is returned as (sum, count) over
real tokens: 50 · the summed BCE plus the generator's mean MLM loss × the token count, so the engine's
global normalisation gives MLM mean + 50 · BCE mean. In eval mode (held-out loss) it is the
discriminator's BCE alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from zoo.config import bounded
from zoo.errors import UserError
from zoo.families import ModelFamily
from zoo.objectives import MaskedLM, MLMOptions, Objective, _generator, forward_inputs, logits_loss_sum


@dataclass
class RTDOptions(MLMOptions):
    generator_size: float = bounded(0.25, gt=0.0, le=1.0)
    """Generator hidden size (and heads, intermediate size) as a fraction of the discriminator's."""
    discriminator_weight: float = bounded(50.0, gt=0.0)
    """λ: weight of the discriminator's mean BCE against the generator's mean MLM loss (ELECTRA: 50)."""


class ElectraPair(nn.Module):
    """The generator and discriminator trained together; their embedding tables are shared."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        share_embeddings(generator, discriminator)

    @property
    def config(self) -> Any:
        return self.discriminator.config

    def set_attn_implementation(self, impl: str) -> None:
        self.discriminator.set_attn_implementation(impl)
        self.generator.set_attn_implementation(impl)


def _embeddings(model: nn.Module) -> nn.Module:
    return model.base_model.embeddings


def share_embeddings(generator: nn.Module, discriminator: nn.Module) -> None:
    """Make the generator use the discriminator's token, position and token-type tables (and tie its MLM
    output layer to the shared token table)."""
    gen, disc = _embeddings(generator), _embeddings(discriminator)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        ours, theirs = getattr(gen, name), getattr(disc, name)
        if ours.weight.shape != theirs.weight.shape:
            raise ValueError(
                f"generator {name} {tuple(ours.weight.shape)} != discriminator's {tuple(theirs.weight.shape)}"
            )
        ours.weight = theirs.weight
    generator.generator_lm_head.weight = disc.word_embeddings.weight


def generator_config(disc_config: Any, fraction: float) -> Any:
    """An ELECTRA generator config: `fraction` of the discriminator's width, its depth, embedding tables
    of the discriminator's shape."""
    from transformers import ElectraConfig

    heads = max(1, round(disc_config.num_attention_heads * fraction))
    head_dim = max(1, round(disc_config.hidden_size * fraction / heads))
    hidden = heads * head_dim
    return ElectraConfig(
        vocab_size=disc_config.vocab_size,
        embedding_size=disc_config.hidden_size,
        hidden_size=hidden,
        num_hidden_layers=disc_config.num_hidden_layers,
        num_attention_heads=heads,
        intermediate_size=max(1, round(disc_config.intermediate_size * fraction)),
        max_position_embeddings=disc_config.max_position_embeddings,
        type_vocab_size=disc_config.type_vocab_size,
        pad_token_id=disc_config.pad_token_id,
        hidden_dropout_prob=disc_config.hidden_dropout_prob,
        attention_probs_dropout_prob=disc_config.attention_probs_dropout_prob,
        tie_word_embeddings=True,
    )


class ReplacedTokenDetection(MaskedLM):
    name = "rtd"
    head = "token_classification"

    def __init__(
        self,
        *mlm_args: Any,
        generator_size: float = 0.25,
        discriminator_weight: float = 50.0,
        **mlm_options: Any,
    ) -> None:
        super().__init__(*mlm_args, **mlm_options)
        self.generator_size = generator_size
        self.discriminator_weight = discriminator_weight

    # ------------------------------------------------------------------------------------------ model

    def build_model(
        self, family: ModelFamily, config: Mapping[str, Any], tokenizer: Any, seed: int
    ) -> nn.Module:
        from transformers import ElectraForMaskedLM

        self.family = family
        discriminator = family.build(self.head, {**config, "num_labels": 1}, tokenizer, seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            generator = ElectraForMaskedLM(generator_config(discriminator.config, self.generator_size))
        return ElectraPair(generator, discriminator)

    def load_model(self, family: ModelFamily, path: Path) -> nn.Module:
        """Continual pretraining from a saved discriminator: a fresh generator (it was never saved)."""
        from transformers import ElectraForMaskedLM

        self.family = family
        discriminator = family.head_class(self.head).from_pretrained(path, num_labels=1)
        generator = ElectraForMaskedLM(generator_config(discriminator.config, self.generator_size))
        return ElectraPair(generator, discriminator)

    def export(self, model: nn.Module) -> nn.Module:
        return getattr(model, "module", model).discriminator

    # ------------------------------------------------------------------------------------------ batch

    def collate(self, blocks: Sequence[Mapping[str, Any]], seed: int) -> dict[str, torch.Tensor]:
        batch = super().collate(blocks, seed)
        # The generator's sample at each position: inverse CDF at this uniform number (seeded here, so
        # the replaced tokens are a pure function of the batch and the generator's weights).
        batch["sample_u"] = torch.rand(batch["input_ids"].shape, generator=_generator(seed + 2))
        return batch

    # ------------------------------------------------------------------------------------------- loss

    def parts(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Generator MLM sum and count, discriminator BCE sum and count, and the discriminator's labels."""
        pair = getattr(model, "module", model)
        inputs = forward_inputs(pair.discriminator, batch, causal=False, family=self.family)
        # ELECTRA's generator attends to all tokens of its window: it takes the padding mask only.
        real = batch["doc_ids"] >= 0
        gen_out = pair.generator(
            input_ids=batch["input_ids"], attention_mask=real.long(), position_ids=inputs["position_ids"]
        )
        gen_sum, gen_count = logits_loss_sum(gen_out.logits, batch["labels"], causal=False)
        chosen = batch["labels"] != -100
        original = torch.where(chosen, batch["labels"], batch["input_ids"])
        with torch.no_grad():
            probs = gen_out.logits[chosen].float().softmax(-1)
            u = batch["sample_u"][chosen].to(probs.device).unsqueeze(-1)
            sampled = (probs.cumsum(-1) < u).sum(-1).clamp(max=probs.shape[-1] - 1)
        replaced_input = original.clone()
        replaced_input[chosen] = sampled
        is_replaced = (replaced_input != original) & real
        logits = pair.discriminator(input_ids=replaced_input, **inputs).logits.squeeze(-1).float()
        bce = F.binary_cross_entropy_with_logits(logits[real], is_replaced[real].float(), reduction="sum")
        return {
            "generator_sum": gen_sum,
            "generator_count": gen_count,
            "discriminator_sum": bce,
            "discriminator_count": real.sum(),
            "replaced": is_replaced,
            "discriminator_input": replaced_input,
        }

    def loss(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.parts(model, batch)
        count = p["discriminator_count"]
        if not model.training:
            return p["discriminator_sum"], count
        gen_mean = p["generator_sum"] / p["generator_count"].clamp(min=1)
        return self.discriminator_weight * p["discriminator_sum"] + gen_mean * count, count


def rtd(options: Mapping[str, Any], tokenizer: Any) -> Objective:
    if tokenizer.mask_token_id is None:
        raise UserError(
            "objective 'rtd' needs a mask token for its generator: add one (e.g. '[MASK]') to the recipe"
        )
    return ReplacedTokenDetection(
        tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids, **options
    )


rtd.options_cls = RTDOptions  # type: ignore[attr-defined]
