"""Pack tokenized documents into fixed-length blocks without padding waste.

A *document* is a mapping with `input_ids: list[int]` and, optionally, `word_starts: list[bool]`
(True where a token begins a word; missing means every token is a word, as for DNA k-mers).
A *block* is a dict of equal-length plain lists (so it can live in a `datasets` column):

    input_ids     token ids; `pad_id` in padding
    position_ids  0, 1, 2, … restarting at every segment start; 0 in padding
    doc_ids       segment index inside the block (0, 1, …); -1 in padding
    word_starts   True where a word begins (always True at a segment start); False in padding

Boundary policy
---------------
* Streaming ("concatenate, then cut"): documents are laid end to end; a document that does not fit
  in what is left of the current block is split and its remainder continues in the next block(s).
  Every block except possibly the last is therefore full: no padding at all.
* Each piece of a split document is an independent *segment*: its position ids restart at 0 and it
  sees nothing outside itself. Positions restart rather than continue because BERT's learned
  position table has only `max_position_embeddings` rows, which a long document would overflow;
  a piece then looks to the model exactly like a short document. A word cut by a split becomes
  two words (the piece's first token is a word start), so whole-word masking never straddles blocks.
* Attention isolation: `block_attention_mask(doc_ids, causal)` gives a 4D mask that lets a token
  attend only to tokens of its own segment (block-diagonal; also causal for decoders). Padding is
  attended by no real token, so it cannot influence anything.
* The last, partial block is padded (`pad_id`, doc_id -1) or dropped with `drop_last=True`.

Mask convention (checked against transformers 5 `masking_utils`): a 4D `attention_mask` is passed
through unchanged by `create_bidirectional_mask` (BERT) and `create_causal_mask` (Llama). The eager
kernels *add* it to the attention scores and torch SDPA accepts an additive float mask too, so the
one form that works for both is additive float `[B, 1, L, L]`: 0.0 = attend, `finfo(dtype).min` =
blocked. A bool mask would be wrong for eager (True would be added as +1). The mask must be in the
model's dtype when the model runs in half precision without autocast: CUDA SDPA gives NaN for a bf16
model with a float32 mask (`zoo.objectives.token_loss_sum` casts it; autocast casts it too).
That dense mask costs O(L²) memory per sequence and keeps SDPA off its flash kernels, so on a GPU the
model runs FlexAttention instead (`train.attention`): `block_mask_for` turns the same rule into a
`BlockMask`, which transformers passes to the flex kernel unchanged and which skips blocked tiles.
The objectives keep `doc_ids` in the batch and build whichever mask the model's attention
implementation takes (`attention_mask_for`) on the model's device, at loss time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch

Block = dict[str, list[Any]]
BLOCK_KEYS = ("input_ids", "position_ids", "doc_ids", "word_starts")


def _fields(doc: Mapping[str, Sequence[Any]]) -> tuple[list[int], list[bool]]:
    ids = list(doc["input_ids"])
    starts = doc.get("word_starts")
    if starts is None:
        return ids, [True] * len(ids)
    starts = [bool(s) for s in starts]
    if len(starts) != len(ids):
        raise ValueError(f"word_starts has {len(starts)} entries but input_ids has {len(ids)}")
    return ids, starts


class _BlockBuilder:
    """Accumulates segments into one block of `block_len` tokens."""

    def __init__(self, block_len: int) -> None:
        self.block_len = block_len
        self._reset()

    def _reset(self) -> None:
        self.block: Block = {k: [] for k in BLOCK_KEYS}
        self.segments = 0

    def __len__(self) -> int:
        return len(self.block["input_ids"])

    @property
    def room(self) -> int:
        return self.block_len - len(self)

    def add(self, ids: list[int], starts: list[bool]) -> None:
        b = self.block
        b["input_ids"] += ids
        b["position_ids"] += range(len(ids))
        b["doc_ids"] += [self.segments] * len(ids)
        b["word_starts"] += [True] + starts[1:]  # a segment always opens a word
        self.segments += 1

    def emit(self, pad_id: int) -> Block:
        n = self.room
        b = self.block
        b["input_ids"] += [pad_id] * n
        b["position_ids"] += [0] * n
        b["doc_ids"] += [-1] * n
        b["word_starts"] += [False] * n
        self._reset()
        return b


def _check_len(block_len: int) -> None:
    if block_len < 1:
        raise ValueError(f"block_len must be positive, got {block_len}")


def pack_documents(
    docs: Iterable[Mapping[str, Sequence[Any]]],
    block_len: int,
    pad_id: int,
    *,
    drop_last: bool = False,
) -> Iterator[Block]:
    """Stream `docs` into full blocks of `block_len` tokens (policy in the module docstring).

    Lazy, so a corpus larger than memory can be packed. Empty documents are skipped.
    """
    _check_len(block_len)
    builder = _BlockBuilder(block_len)
    for doc in docs:
        ids, starts = _fields(doc)
        i = 0
        while i < len(ids):
            take = min(len(ids) - i, builder.room)
            builder.add(ids[i : i + take], starts[i : i + take])
            i += take
            if builder.room == 0:
                yield builder.emit(pad_id)
    if len(builder) and not drop_last:
        yield builder.emit(pad_id)


def pad_documents(
    docs: Iterable[Mapping[str, Sequence[Any]]], block_len: int, pad_id: int
) -> Iterator[Block]:
    """The padded baseline: one document per block, truncated to `block_len`, then padded.

    Same block format as `pack_documents`, so the objectives and the trainer treat both alike.
    """
    _check_len(block_len)
    builder = _BlockBuilder(block_len)
    for doc in docs:
        ids, starts = _fields(doc)
        if ids:
            builder.add(ids[:block_len], starts[:block_len])
            yield builder.emit(pad_id)


def window_documents(
    docs: Iterable[Mapping[str, Sequence[Any]]], block_len: int, pad_id: int
) -> Iterator[Block]:
    """One document per block, never two: each document cut into windows of `block_len` tokens, the
    last window of each padded. For models whose attention cannot isolate packed documents (Longformer).

    Same block format as `pack_documents` (every block has one segment, doc_id 0, positions from 0).
    """
    _check_len(block_len)
    builder = _BlockBuilder(block_len)
    for doc in docs:
        ids, starts = _fields(doc)
        for i in range(0, len(ids), block_len):
            builder.add(ids[i : i + block_len], starts[i : i + block_len])
            yield builder.emit(pad_id)


def stack_blocks(blocks: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """Blocks (lists or 1-D tensors) -> batch tensors `[B, L]` (word_starts bool, the rest long)."""
    if not blocks:
        raise ValueError("cannot collate an empty list of blocks")
    out: dict[str, torch.Tensor] = {}
    for key in BLOCK_KEYS:
        if key not in blocks[0]:
            continue
        dtype = torch.bool if key == "word_starts" else torch.long
        out[key] = torch.stack([torch.as_tensor(b[key], dtype=dtype) for b in blocks])
    return out


def block_attention_mask(
    doc_ids: torch.Tensor, causal: bool, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Additive 4D mask `[B, 1, L, L]` (0.0 = attend, finfo(dtype).min = blocked) from `doc_ids [B, L]`.

    Query i may attend key j iff both are in the same segment (doc_id >= 0) and, if `causal`, j <= i.
    A padding query attends only to itself: a row with every key blocked would make softmax divide
    0 by 0 (NaN once the mask is -inf in half precision); no real query attends to padding, so the
    padding's own output never reaches a real token.
    """
    if doc_ids.dim() != 2:
        raise ValueError(f"doc_ids must be [batch, length], got shape {tuple(doc_ids.shape)}")
    length = doc_ids.shape[1]
    q, k = doc_ids.unsqueeze(2), doc_ids.unsqueeze(1)
    allowed = (q == k) & (q >= 0)
    if causal:
        allowed &= torch.ones(length, length, dtype=torch.bool, device=doc_ids.device).tril()
    allowed |= torch.eye(length, dtype=torch.bool, device=doc_ids.device)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=doc_ids.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)


def block_mask_for(doc_ids: torch.Tensor, causal: bool) -> Any:
    """The rule of `block_attention_mask` as a FlexAttention `BlockMask` (no [L, L] tensor per row)."""
    from torch.nn.attention.flex_attention import create_block_mask

    if doc_ids.dim() != 2:
        raise ValueError(f"doc_ids must be [batch, length], got shape {tuple(doc_ids.shape)}")
    batch, length = doc_ids.shape

    def allowed(b: Any, h: Any, q: Any, k: Any) -> Any:
        same = (doc_ids[b, q] == doc_ids[b, k]) & (doc_ids[b, q] >= 0)
        ok = (same & (k <= q)) if causal else same
        return ok | (q == k)

    return create_block_mask(allowed, batch, None, length, length, device=doc_ids.device)


def attention_mask_for(model: Any, doc_ids: torch.Tensor, causal: bool, dtype: torch.dtype) -> Any:
    """The packed-block mask in the form `model`'s attention implementation takes: a `BlockMask` for
    flex attention, else the additive float mask (in `dtype`)."""
    if getattr(getattr(model, "config", None), "_attn_implementation", None) == "flex_attention":
        return block_mask_for(doc_ids, causal)
    return block_attention_mask(doc_ids, causal, dtype)
