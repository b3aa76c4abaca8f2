"""The URLBERT pretraining objective (Li et al. 2024, arXiv 2402.11495): masked LM plus two regularisers.

    loss = mlm_weight · MLM
         + contrastive_weight · InfoNCE(view 1, view 2)      sentence level, in-batch negatives
         + vat_weight · KL(clean ‖ adversarially perturbed)   token level, on the input embeddings

Each weight is an `objective.*` config key; a weight of 0 switches its term off (and skips its forward
passes), so `objective.contrastive_weight=0 objective.vat_weight=0` is exactly the `mlm` objective.

- **Contrastive.** A URL is a packed segment (documents never attend to each other, see `zoo.packing`),
  embedded as the mean of its last hidden states. View 1 is the MLM pass itself; view 2 is a second pass
  over the same URLs with an independent light masking (`view_mask_prob` of the tokens → [MASK]) and its
  own dropout: two URL-preserving corruptions of one URL are positives, every other URL of the
  micro-batch is a negative. Symmetric InfoNCE with temperature `temperature` (SimCSE's 0.05).
- **VAT.** A random direction on each token's input embedding is turned towards the adversarial one by
  `vat_iterations` power iterations (the gradient of the KL at a perturbation of relative size `vat_xi`),
  then scaled to `vat_epsilon` × that token's embedding norm (relative sizes keep the radius meaningful
  as the embeddings grow); the loss is the KL from the clean MLM prediction (held fixed) to the prediction
  under that perturbation, averaged over the real tokens.

The loss is returned as (sum, count) in MLM tokens: the auxiliary means are scaled by the token count, so
the engine's global-batch normalisation gives mlm_weight · MLM + weighted auxiliary means. Held-out loss
(the model in eval mode) is the MLM term alone, so it compares across ablations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from zoo.config import bounded
from zoo.errors import UserError
from zoo.objectives import MaskedLM, MLMOptions, Objective, _generator, logits_loss_sum, model_mask
from zoo.packing import stack_blocks


@dataclass
class URLBertOptions(MLMOptions):
    """`objective.*` keys of urlbert: mlm's (mask_prob, whole_word) and the two extra terms' (ranges
    checked when the config is built)."""

    whole_word: bool = False
    """Mask whole words (URLs have few; sub-tokens by default)."""
    mlm_weight: float = bounded(1.0, ge=0.0)
    """Weight of the masked-LM term (0 switches it off)."""
    contrastive_weight: float = bounded(1.0, ge=0.0)
    """Weight of the sentence-level InfoNCE term (0 switches it off)."""
    temperature: float = bounded(0.05, gt=0.0)
    """InfoNCE temperature (SimCSE's 0.05)."""
    view_mask_prob: float = bounded(0.1, ge=0.0, lt=1.0)
    """Share of tokens masked in the second view."""
    vat_weight: float = bounded(1.0, ge=0.0)
    """Weight of the token-level virtual adversarial term (0 switches it off)."""
    vat_epsilon: float = bounded(0.1, gt=0.0)
    """Perturbation radius, relative to each token's embedding norm."""
    vat_xi: float = bounded(0.01, gt=0.0)
    """Size of the probe perturbation of the power iteration."""
    vat_iterations: int = bounded(1, ge=1)
    """Power iterations towards the adversarial direction."""

    def validate(self) -> None:
        if self.mlm_weight == self.contrastive_weight == self.vat_weight == 0:
            raise UserError(
                "objective 'urlbert': every term has weight 0; give at least one a positive weight"
            )


class URLBertObjective(MaskedLM):
    name = "urlbert"

    def __init__(
        self,
        mask_token_id: int,
        vocab_size: int,
        special_ids: Iterable[int],
        mask_prob: float = 0.15,
        whole_word: bool = False,
        mlm_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        temperature: float = 0.05,
        view_mask_prob: float = 0.1,
        vat_weight: float = 1.0,
        vat_epsilon: float = 0.1,
        vat_xi: float = 0.01,
        vat_iterations: int = 1,
    ) -> None:
        super().__init__(mask_token_id, vocab_size, special_ids, mask_prob, whole_word)
        self.mlm_weight, self.contrastive_weight, self.vat_weight = mlm_weight, contrastive_weight, vat_weight
        self.temperature, self.view_mask_prob = temperature, view_mask_prob
        self.vat_epsilon, self.vat_xi, self.vat_iterations = vat_epsilon, vat_xi, vat_iterations

    # ------------------------------------------------------------------------------------------ batch

    def collate(self, blocks: Sequence[Mapping[str, Any]], seed: int) -> dict[str, torch.Tensor]:
        batch = super().collate(blocks, seed)
        stacked = stack_blocks(blocks)
        original, doc_ids = stacked["input_ids"], stacked["doc_ids"]
        g = _generator(seed + 1)  # the second view's masking: independent of the MLM masking
        candidates = (doc_ids >= 0) & ~torch.isin(original, self.special_ids)
        hidden = candidates & (torch.rand(original.shape, generator=g) < self.view_mask_prob)
        batch["view_ids"] = original.masked_fill(hidden, self.mask_token_id)
        batch["doc_ids"] = doc_ids
        return batch

    # ------------------------------------------------------------------------------------------- loss

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mask = model_mask(model, batch, causal=False)
        train = model.training
        contrast = train and self.contrastive_weight > 0
        out = model(
            input_ids=batch["input_ids"],
            attention_mask=mask,
            position_ids=batch["position_ids"],
            output_hidden_states=contrast,
        )
        mlm_sum, count = logits_loss_sum(out.logits, batch["labels"], causal=False)
        if not train:
            return mlm_sum, count
        aux = out.logits.new_zeros((), dtype=torch.float32)
        if contrast:
            view = model(
                input_ids=batch["view_ids"],
                attention_mask=mask,
                position_ids=batch["position_ids"],
                output_hidden_states=True,
            )
            z1 = segment_means(out.hidden_states[-1], batch["doc_ids"])
            z2 = segment_means(view.hidden_states[-1], batch["doc_ids"])
            aux = aux + self.contrastive_weight * info_nce(z1, z2, self.temperature)
        if self.vat_weight > 0:
            aux = aux + self.vat_weight * self.virtual_adversarial(model, batch, mask, out.logits)
        return self.mlm_weight * mlm_sum + aux * count, count

    def virtual_adversarial(
        self, model: Any, batch: Mapping[str, torch.Tensor], mask: torch.Tensor, clean_logits: torch.Tensor
    ) -> torch.Tensor:
        """KL(clean ‖ perturbed) at the power-iteration adversarial perturbation of the input embeddings."""
        embed = getattr(model, "module", model).get_input_embeddings()
        embeds = embed(batch["input_ids"])
        real = batch["doc_ids"] >= 0
        clean = clean_logits.detach()
        scale = embeds.detach().norm(dim=-1, keepdim=True)

        def perturbed(delta: torch.Tensor) -> torch.Tensor:
            out = model(inputs_embeds=embeds + delta, attention_mask=mask, position_ids=batch["position_ids"])
            return token_kl(clean, out.logits, real)

        direction = _unit(torch.randn_like(embeds))
        for _ in range(self.vat_iterations):
            delta = (self.vat_xi * scale * direction).detach().requires_grad_()
            (grad,) = torch.autograd.grad(perturbed(delta), delta)
            direction = _unit(grad.detach())
        return perturbed((self.vat_epsilon * scale * direction).detach())


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Each token's vector scaled to unit L2 norm."""
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def segment_means(hidden: torch.Tensor, doc_ids: torch.Tensor) -> torch.Tensor:
    """Mean hidden state of each packed segment (block b, document d), in a fixed order: [segments, H]."""
    rows, length = doc_ids.shape
    real = doc_ids >= 0
    key = (torch.arange(rows, device=doc_ids.device)[:, None] * (length + 1) + doc_ids)[real]
    _, segment = torch.unique(key, return_inverse=True)
    n = int(segment.max()) + 1 if segment.numel() else 0
    flat = hidden[real].float()
    sums = flat.new_zeros(n, flat.shape[-1]).index_add_(0, segment, flat)
    sizes = torch.bincount(segment, minlength=n).clamp(min=1).unsqueeze(-1)
    return sums / sizes


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of z1 and of z2 are positives, every other row a negative."""
    if z1.shape[0] < 2:
        return z1.new_zeros(())
    sim = F.normalize(z1, dim=-1) @ F.normalize(z2, dim=-1).T / temperature
    target = torch.arange(sim.shape[0], device=sim.device)
    return (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2


def token_kl(clean_logits: torch.Tensor, logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens of KL(softmax(clean) ‖ softmax(logits)), in float32."""
    p_log = clean_logits[real].float().log_softmax(-1)
    q_log = logits[real].float().log_softmax(-1)
    return F.kl_div(q_log, p_log, log_target=True, reduction="batchmean")


def urlbert(options: Mapping[str, Any], tokenizer: Any) -> Objective:
    if tokenizer.mask_token_id is None:
        raise UserError(
            "objective 'urlbert' needs a mask token: add one (e.g. '[MASK]') to the tokenizer recipe"
        )
    return URLBertObjective(tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids, **options)


urlbert.options_cls = URLBertOptions  # type: ignore[attr-defined]
