"""T5 span corruption (Raffel et al. 2020, §3.1.4; the objective Clinical-T5 pretrains with).

Each packed block (`zoo.packing`; documents laid end to end, each ending with </s>) is one example:
`noise_density` of its real tokens are hidden in spans whose lengths average `mean_span_length`. The
encoder reads the block with every span replaced by one sentinel (<extra_id_0>, <extra_id_1>, … in order)
and </s> appended; the decoder writes each sentinel followed by the span it stands for, then </s>:

    block    Thank you for inviting me to your party last week </s>
    input    Thank you <extra_id_0> me to your party <extra_id_1> week </s> </s>
    target   <extra_id_0> for inviting <extra_id_1> last </s>

Span layout is T5's `random_spans_noise_mask`: round(n · density) noise tokens (at least 1, at most n - 1)
in round(noise / mean_span_length) spans (at least 1); the noise and the non-noise tokens are each cut into
that many non-empty runs at uniformly random points, and the runs alternate, non-noise first. So the
noise fraction and the mean span length are exact up to rounding, per block.

As in T5 (and HF's run_t5_mlm_flax) the documents of a block attend to each other: the encoder input is
no longer aligned with the block's segments once spans collapse into sentinels. The input is padded to the
block length (a full 512-token block gives about 0.9 × 512 input tokens, T5 packs 568 raw tokens into 512
instead) so batches keep one shape. The loss is the decoder's cross entropy summed over the target tokens.
Randomness comes only from the generator seeded by `seed` (batches are a function of (seed, step)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from zoo.config import bounded
from zoo.domain import IGNORE
from zoo.errors import UserError
from zoo.objectives import HeadObjective, Objective, _generator, logits_loss_sum
from zoo.packing import stack_blocks
from zoo.tokenizer import SENTINEL


@dataclass
class SpanOptions:
    noise_density: float = bounded(0.15, gt=0.0, lt=1.0)
    """Share of each block's tokens hidden in spans (T5: 0.15)."""
    mean_span_length: float = bounded(3.0, ge=1.0)
    """Mean length of a hidden span (T5: 3)."""


def _segment_lengths(total: int, segments: int, g: torch.Generator) -> torch.Tensor:
    """`total` items cut into `segments` non-empty runs at uniformly random points (T5's random_segmentation)."""
    cuts = torch.randperm(total - 1, generator=g)[: segments - 1].sort().values + 1
    edges = torch.cat([torch.tensor([0]), cuts, torch.tensor([total])])
    return edges.diff()


def noise_mask(length: int, density: float, mean_span: float, g: torch.Generator) -> torch.Tensor:
    """Bool [length]: the tokens to hide, in spans (see the module docstring); all False if length < 2."""
    if length < 2:
        return torch.zeros(length, dtype=torch.bool)
    noise = min(max(round(length * density), 1), length - 1)
    spans = max(round(noise / mean_span), 1)
    spans = min(spans, noise, length - noise)
    runs = torch.stack(
        [_segment_lengths(length - noise, spans, g), _segment_lengths(noise, spans, g)], dim=1
    ).flatten()  # keep, hide, keep, hide, …
    is_noise = torch.arange(len(runs)) % 2 == 1
    return is_noise.repeat_interleave(runs)


def corrupt(
    tokens: torch.Tensor, mask: torch.Tensor, sentinels: Sequence[int], eos: int
) -> tuple[list[int], list[int]]:
    """(encoder input, decoder target) of one block's real `tokens` under the noise `mask`."""
    starts = mask & ~torch.cat([torch.tensor([False]), mask[:-1]])
    span = starts.cumsum(0) - 1  # the span index of each noise token
    if int(starts.sum()) > len(sentinels):
        raise UserError(
            f"span corruption needs {int(starts.sum())} sentinel tokens for one block but the tokenizer has "
            f"{len(sentinels)}; lower data.seq_len or raise the recipe's sentinel_tokens"
        )
    sentinel = torch.tensor(list(sentinels), dtype=torch.long)
    # Encoder: a kept token stays; the first token of a span becomes its sentinel; the rest of it goes.
    enc = torch.where(starts, sentinel[span.clamp(min=0)], tokens)[~mask | starts]
    # Decoder: the mirror image (each span's sentinel, then the span), then </s>.
    # Decoder: the mirror image, each span's sentinel then the span, then </s>. Every noise token is
    # preceded by its sentinel when it starts a span: interleave (sentinel or nothing, token).
    pairs = torch.stack([torch.where(starts, sentinel[span.clamp(min=0)], -1), tokens], dim=1)[mask].flatten()
    return enc.tolist() + [eos], pairs[pairs >= 0].tolist() + [eos]


def reconstruct(
    inputs: Sequence[int], targets: Sequence[int], sentinels: Sequence[int], eos: int
) -> list[int]:
    """The original tokens from an (input, target) pair: each sentinel of the input replaced by its span."""
    where = {s: i for i, s in enumerate(sentinels)}
    spans: dict[int, list[int]] = {}
    current = -1
    for t in targets[:-1]:  # the target ends with </s>
        if t in where:
            current = where[t]
            spans[current] = []
        else:
            spans[current].append(t)
    out: list[int] = []
    for t in inputs[:-1]:  # the appended </s> is not part of the block
        out.extend(spans[where[t]] if t in where else [t])
    return out


class SpanCorruption(HeadObjective):
    name = "span"
    head = "span_corruption"

    def __init__(
        self, sentinels: Sequence[int], eos: int, pad: int, noise_density: float, mean_span_length: float
    ):
        self.sentinels, self.eos, self.pad = list(sentinels), eos, pad
        self.noise_density, self.mean_span_length = noise_density, mean_span_length

    def collate(self, blocks: Sequence[Mapping[str, Any]], seed: int) -> dict[str, torch.Tensor]:
        batch = stack_blocks(blocks)
        ids, real = batch["input_ids"], batch["doc_ids"] >= 0
        g = _generator(seed)
        pairs = []
        for row in range(ids.shape[0]):
            tokens = ids[row][real[row]]
            pairs.append(
                corrupt(
                    tokens,
                    noise_mask(len(tokens), self.noise_density, self.mean_span_length, g),
                    self.sentinels,
                    self.eos,
                )
            )
        width = max(ids.shape[1], max(len(i) for i, _ in pairs))
        target_width = max(len(t) for _, t in pairs)
        input_ids = torch.full((len(pairs), width), self.pad, dtype=torch.long)
        attention = torch.zeros((len(pairs), width), dtype=torch.long)
        labels = torch.full((len(pairs), target_width), IGNORE, dtype=torch.long)
        for row, (inp, tgt) in enumerate(pairs):
            input_ids[row, : len(inp)] = torch.tensor(inp)
            attention[row, : len(inp)] = 1
            labels[row, : len(tgt)] = torch.tensor(tgt)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        # HF shifts the labels right behind the decoder start token (pad) to make the decoder input.
        out = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]
        )
        return logits_loss_sum(out.logits, batch["labels"], causal=False)


def span(options: Mapping[str, Any], tokenizer: Any) -> Objective:
    vocab = tokenizer.get_vocab()
    sentinels = []
    while SENTINEL.format(len(sentinels)) in vocab:
        sentinels.append(vocab[SENTINEL.format(len(sentinels))])
    if not sentinels or tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
        raise UserError(
            "objective 'span' needs T5's sentinel tokens <extra_id_0>, … and eos and pad tokens: "
            "set sentinel_tokens: 100 and special_tokens pad/eos in the tokenizer recipe"
        )
    return SpanCorruption(sentinels, tokenizer.eos_token_id, tokenizer.pad_token_id, **options)


span.options_cls = SpanOptions  # type: ignore[attr-defined]
