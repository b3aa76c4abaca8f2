"""Pretraining objectives: turn packed blocks (`zoo.packing`) into a batch, and a batch into a loss.

A batch is `dict[str, Tensor]` with exactly the keys a HF model's forward takes, so `model(**batch)`
works too:

    input_ids       [B, L] long    (MLM: after masking)
    doc_ids         [B, L] long    packed segment of each token (-1 = padding); the attention mask is
                                   built from it at loss time, in the form the model's attention takes
    position_ids    [B, L] long    restarting at 0 in every packed segment
    labels          [B, L] long    -100 = ignored. CLM: HF convention, unshifted (label t is predicted
                                   from position t-1; the model, or `loss`, shifts)

`collate` draws randomness only from a `torch.Generator` seeded with `seed`, so the same blocks and
seed give the same batch on any machine: the trainer derives the seed from (run seed, step) and a
resumed run replays the exact batches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from zoo.config import bounded, typed_options
from zoo.domain import IGNORE
from zoo.errors import UserError
from zoo.families import ModelFamily
from zoo.packing import attention_mask_for, stack_blocks
from zoo.registry import Registry


@runtime_checkable
class Objective(Protocol):
    """What the engine trains in pretraining. The model may be composite (one nn.Module holding
    several networks, e.g. an ELECTRA generator + discriminator); `export` says what is saved as model/."""

    name: str

    def build_model(
        self, family: ModelFamily, config: Mapping[str, Any], tokenizer: Any, seed: int
    ) -> nn.Module: ...

    def load_model(self, family: ModelFamily, path: Path) -> nn.Module:
        """The model to continue pretraining from a saved `model/` (continual pretraining)."""
        ...

    def collate(self, blocks: Sequence[Mapping[str, Any]], seed: int) -> dict[str, torch.Tensor]: ...

    def loss(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(sum of the per-item losses, item count): the engine normalises over the global batch."""
        ...

    def export(self, model: nn.Module) -> nn.Module:
        """The network saved as the run's `model/` (loadable with `from_pretrained`)."""
        ...


class HeadObjective:
    """An objective that trains one network: the family's `head` model."""

    name = ""
    head = ""
    family: ModelFamily | None = None
    """The family of the model it built or loaded: it says how that model takes a pretraining batch."""

    def build_model(
        self, family: ModelFamily, config: Mapping[str, Any], tokenizer: Any, seed: int
    ) -> nn.Module:
        self.family = family
        return family.build(self.head, config, tokenizer, seed)

    def load_model(self, family: ModelFamily, path: Path) -> nn.Module:
        self.family = family
        return family.head_class(self.head).from_pretrained(path)

    def export(self, model: nn.Module) -> nn.Module:
        return model


def _generator(seed: int) -> torch.Generator:
    # Generator seeds are unsigned 64-bit; fold any Python int (e.g. a negative hash()) into range.
    return torch.Generator().manual_seed(seed % 2**64)


def _model_dtype(model: Any) -> torch.dtype:
    return next(p.dtype for p in model.parameters() if p.is_floating_point())


def token_loss_sum(
    model: Any, batch: Mapping[str, torch.Tensor], causal: bool, family: ModelFamily | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token cross entropies, number of labelled tokens); CLM labels are shifted as in HF.

    The sum form lets a trainer divide by the labelled-token count of the whole global batch
    (gradient accumulation, several processes) instead of averaging per-micro-batch means.
    `family` (the model's, when the objective built or loaded it) gives the attention inputs.
    """
    out = model(input_ids=batch["input_ids"], **forward_inputs(model, batch, causal, family))
    return logits_loss_sum(out.logits, batch["labels"], causal)


def forward_inputs(
    model: Any, batch: Mapping[str, torch.Tensor], causal: bool, family: ModelFamily | None
) -> dict[str, Any]:
    """Attention mask and positions of a pretraining forward: the family's own (Longformer's windows),
    else the packed block mask of `model_mask`."""
    if family is not None and not family.packs:
        return family.window_forward_inputs(model, batch, causal)
    return {"attention_mask": model_mask(model, batch, causal), "position_ids": batch["position_ids"]}


def model_mask(model: Any, batch: Mapping[str, torch.Tensor], causal: bool) -> Any:
    """The attention mask of a packed batch in the form `model` takes: built from `doc_ids` (a BlockMask
    for flex attention, else the additive mask in the model's dtype), or the batch's own additive mask
    (an objective may collate one; older plug-ins do) cast to the model's dtype."""
    dtype = _model_dtype(model)
    mask = batch.get("attention_mask")
    if mask is None:
        return attention_mask_for(model, batch["doc_ids"], causal, dtype)
    if mask.is_floating_point() and mask.dtype != dtype:
        # A half-precision model without autocast needs the mask in its dtype: with a float32 mask
        # BERT's eager attention fails, and CUDA SDPA silently returns NaN (seen on torch 2.11, H200).
        # Clamp first so "blocked" stays the finite minimum instead of overflowing to -inf.
        mask = mask.clamp(min=torch.finfo(dtype).min).to(dtype)
    return mask


def logits_loss_sum(
    logits: torch.Tensor, labels: torch.Tensor, causal: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of token cross entropies, number of labelled tokens) from a forward pass's logits."""
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    total = F.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE, reduction="sum"
    )
    return total, (labels != IGNORE).sum()


class MaskedLM(HeadObjective):
    """BERT masked language modelling with whole-word masking and the 80/10/10 rule."""

    name = "mlm"
    head = "masked_lm"

    def __init__(
        self,
        mask_token_id: int,
        vocab_size: int,
        special_ids: Iterable[int],
        mask_prob: float = 0.15,
        whole_word: bool = True,
    ) -> None:
        self.mask_token_id = mask_token_id
        self.mask_prob = mask_prob
        self.whole_word = whole_word
        self.special_ids = torch.tensor(sorted(set(special_ids) | {mask_token_id}), dtype=torch.long)
        # Replacement tokens for the "10% random" case: any real token, never a special one.
        keep = torch.ones(vocab_size, dtype=torch.bool)
        keep[self.special_ids[self.special_ids < vocab_size]] = False
        self.random_ids = keep.nonzero().flatten()
        if len(self.random_ids) == 0:
            raise UserError("the tokenizer has no non-special tokens to sample for masked LM")

    def _word_starts(self, batch: Mapping[str, torch.Tensor], cand: torch.Tensor) -> torch.Tensor:
        doc_ids = batch["doc_ids"]
        if not self.whole_word or "word_starts" not in batch:
            start = torch.ones_like(cand)
        else:
            start = batch["word_starts"].clone()
            # Words never cross a segment boundary, a special token or padding: such tokens are
            # words of their own, and the token after one starts a new word.
            start |= ~cand
            start[:, 1:] |= ~cand[:, :-1] | (doc_ids[:, 1:] != doc_ids[:, :-1])
        start[:, 0] = True
        return start

    def choose(self, batch: Mapping[str, torch.Tensor], g: torch.Generator) -> torch.Tensor:
        """Bool `[B, L]`: the tokens to predict — whole words, ≈ mask_prob of each row's candidates."""
        input_ids, doc_ids = batch["input_ids"], batch["doc_ids"]
        rows, length = input_ids.shape
        cand = (doc_ids >= 0) & ~torch.isin(input_ids, self.special_ids)
        wid = self._word_starts(batch, cand).flatten().cumsum(0) - 1  # word index, global over the batch
        n_words = int(wid[-1]) + 1
        # candidate tokens per word (0 for special/padding words) and the row each word lies in
        size = torch.bincount(wid, weights=cand.flatten().double(), minlength=n_words)
        row_of_token = torch.arange(rows).repeat_interleave(length)
        row = torch.zeros(n_words, dtype=torch.long).scatter_(0, wid, row_of_token)
        # Visit each row's words in random order: sort by row + U[0, 1).
        order = torch.argsort(row.double() + torch.rand(n_words, generator=g, dtype=torch.float64))
        size_o, row_o = size[order], row[order]
        row_total = torch.bincount(row, weights=size, minlength=rows)
        end = size_o.cumsum(0) - (row_total.cumsum(0) - row_total)[row_o]  # tokens taken up to this word
        begin = end - size_o
        budget = self.mask_prob * row_total[row_o]
        # Take words while they fit; the one crossing the budget is taken with probability equal to the
        # fraction of it that fits, so a row's expected masked count is exactly mask_prob × candidates.
        u = torch.rand(n_words, generator=g, dtype=torch.float64)
        take_o = ((end <= budget) | ((begin < budget) & (u * size_o < budget - begin))) & (size_o > 0)
        take = torch.empty_like(take_o).scatter_(0, order, take_o)
        return take[wid].view(rows, length) & cand

    def collate(self, blocks: Sequence[Mapping[str, Any]], seed: int) -> dict[str, torch.Tensor]:
        batch = stack_blocks(blocks)
        g = _generator(seed)
        original = batch["input_ids"]
        chosen = self.choose(batch, g)
        r = torch.rand(original.shape, generator=g)
        replacement = self.random_ids[torch.randint(len(self.random_ids), original.shape, generator=g)]
        input_ids = original.clone()
        input_ids[chosen & (r < 0.8)] = self.mask_token_id
        randomised = chosen & (r >= 0.8) & (r < 0.9)
        input_ids[randomised] = replacement[randomised]  # the last 10% stay unchanged
        return {
            "input_ids": input_ids,
            "doc_ids": batch["doc_ids"],
            "position_ids": batch["position_ids"],
            "labels": torch.where(chosen, original, IGNORE),
        }

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return token_loss_sum(model, batch, causal=False, family=self.family)


class CausalLM(HeadObjective):
    """Next-token prediction inside each packed segment (never across a document boundary)."""

    name = "clm"
    head = "causal_lm"

    def collate(self, blocks: Sequence[Mapping[str, Any]], seed: int) -> dict[str, torch.Tensor]:
        del seed  # deterministic; kept for the common signature
        batch = stack_blocks(blocks)
        doc_ids = batch["doc_ids"]
        # Labels are unshifted (HF convention): label t is predicted at t-1, so ignoring the label of each
        # segment's first token stops the last token of one document from "predicting" the next one.
        first = torch.ones_like(doc_ids, dtype=torch.bool)
        first[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
        labels = batch["input_ids"].masked_fill(first | (doc_ids < 0), IGNORE)
        return {
            "input_ids": batch["input_ids"],
            "doc_ids": doc_ids,
            "position_ids": batch["position_ids"],
            "labels": labels,
        }

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return token_loss_sum(model, batch, causal=True, family=self.family)


Factory = Callable[[Mapping[str, Any], Any], Objective]
"""An objective's entry point: `factory(options, tokenizer) -> Objective`; options come from the
domain's ObjectiveSpec overlaid with the run's `objective.*` keys. A factory with an `options_cls`
attribute (a dataclass, ranges declared with `zoo.config.bounded`) gets them checked and typed through it
before any work (unknown keys and out-of-range values are UserErrors); one without gets them as given."""


@dataclass
class MLMOptions:
    mask_prob: float = bounded(0.15, gt=0.0, lt=1.0)
    """Share of the candidate tokens chosen for prediction."""
    whole_word: bool = True
    """Choose whole words (all their sub-tokens) rather than single sub-tokens."""


@dataclass
class NoOptions:
    """An objective without options."""


def mlm(options: Mapping[str, Any], tokenizer: Any) -> Objective:
    if tokenizer.mask_token_id is None:
        raise UserError(
            "objective 'mlm' needs a mask token: add one (e.g. '[MASK]') to the tokenizer recipe's specials"
        )
    return MaskedLM(tokenizer.mask_token_id, len(tokenizer), tokenizer.all_special_ids, **options)


def clm(options: Mapping[str, Any], tokenizer: Any) -> Objective:
    return CausalLM()


mlm.options_cls = MLMOptions  # type: ignore[attr-defined]
clm.options_cls = NoOptions  # type: ignore[attr-defined]


def _check_factory(obj: Any) -> Factory:
    if not callable(obj):
        raise TypeError(f"{obj!r} is not an objective factory `(options, tokenizer) -> Objective`")
    return obj


OBJECTIVES: Registry[Factory] = Registry("zoo.objectives", "objective", _check_factory, "OBJECTIVE")


def objective_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options of objective `name`, checked and typed by its `options_cls` where it has one."""
    cls = getattr(OBJECTIVES.get(name), "options_cls", None)
    if cls is None:
        return dict(options)
    return dataclasses.asdict(typed_options(cls, options, f"objective '{name}'", "objective."))


def build_objective(name: str, options: Mapping[str, Any], tokenizer: Any) -> Objective:
    objective = OBJECTIVES.get(name)(objective_options(name, options), tokenizer)
    if not isinstance(objective, Objective):
        raise TypeError(f"objective factory '{name}' returned {objective!r}, which is not a zoo Objective")
    return objective
