import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from tiny_models import eager_flex_attention

from zoo.packing import (
    BLOCK_KEYS,
    attention_mask_for,
    block_attention_mask,
    pack_documents,
    pad_documents,
    stack_blocks,
)

PAD = 0


def doc(ids, starts=None):
    return {"input_ids": list(ids), "word_starts": [True] * len(ids) if starts is None else list(starts)}


def test_pack_fills_blocks_resets_positions_and_splits_long_documents():
    docs = [doc(range(1, 4)), doc(range(10, 19), [True, False] * 4 + [True]), doc([]), doc(range(30, 32))]
    blocks = list(pack_documents(docs, block_len=5, pad_id=PAD))
    # 3 + 9 + 2 = 14 tokens -> two full blocks and a last one with 4 tokens + 1 pad
    assert [len(b["input_ids"]) for b in blocks] == [5, 5, 5]
    assert all(len(b[k]) == 5 for b in blocks for k in BLOCK_KEYS)
    assert blocks[0] == {
        "input_ids": [1, 2, 3, 10, 11],
        "position_ids": [0, 1, 2, 0, 1],
        "doc_ids": [0, 0, 0, 1, 1],
        "word_starts": [True, True, True, True, False],
    }
    # the 9-token document continues, positions restart, the piece opens a word even mid-word
    assert blocks[1] == {
        "input_ids": [12, 13, 14, 15, 16],
        "position_ids": [0, 1, 2, 3, 4],
        "doc_ids": [0, 0, 0, 0, 0],
        "word_starts": [True, False, True, False, True],
    }
    assert blocks[2] == {
        "input_ids": [17, 18, 30, 31, PAD],
        "position_ids": [0, 1, 0, 1, 0],
        "doc_ids": [0, 0, 1, 1, -1],
        "word_starts": [True, True, True, True, False],
    }
    real = [t for b in blocks for t, d in zip(b["input_ids"], b["doc_ids"]) if d >= 0]
    assert real == [t for d in docs for t in d["input_ids"]]


def test_pack_drop_last_and_missing_word_starts():
    blocks = list(pack_documents([{"input_ids": [5, 6, 7]}], block_len=2, pad_id=PAD, drop_last=True))
    assert blocks == [
        {"input_ids": [5, 6], "position_ids": [0, 1], "doc_ids": [0, 0], "word_starts": [True, True]}
    ]
    with pytest.raises(ValueError):
        list(pack_documents([doc([1, 2], [True])], block_len=4, pad_id=PAD))


def test_pad_documents_truncates_and_pads():
    blocks = list(pad_documents([doc([1, 2, 3, 4, 5]), doc([7])], block_len=3, pad_id=PAD))
    assert blocks == [
        {"input_ids": [1, 2, 3], "position_ids": [0, 1, 2], "doc_ids": [0, 0, 0], "word_starts": [True] * 3},
        {
            "input_ids": [7, PAD, PAD],
            "position_ids": [0, 0, 0],
            "doc_ids": [0, -1, -1],
            "word_starts": [True, False, False],
        },
    ]


def test_block_attention_mask_is_block_diagonal_and_causal():
    doc_ids = torch.tensor([[0, 0, 1, -1]])
    blocked = torch.finfo(torch.float32).min
    bi = block_attention_mask(doc_ids, causal=False)
    assert bi.shape == (1, 1, 4, 4) and bi.dtype == torch.float32
    allowed = bi[0, 0] == 0
    assert allowed.tolist() == [
        [True, True, False, False],
        [True, True, False, False],
        [False, False, True, False],
        [False, False, False, True],  # padding attends only to itself
    ]
    assert (bi[0, 0][~allowed] == blocked).all()
    causal = block_attention_mask(doc_ids, causal=True)[0, 0] == 0
    assert causal.tolist() == [
        [True, False, False, False],
        [True, True, False, False],
        [False, False, True, False],
        [False, False, False, True],
    ]
    assert block_attention_mask(doc_ids, causal=False, dtype=torch.bfloat16).dtype == torch.bfloat16


def _tiny(kind: str, attn: str):
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    common = dict(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=32,
        attn_implementation=attn,
    )
    if kind == "bert":
        return BertForMaskedLM(BertConfig(**common)).eval()
    return LlamaForCausalLM(LlamaConfig(num_key_value_heads=2, **common)).eval()


@pytest.mark.parametrize("attn", ["sdpa", "eager", "flex_attention"])
@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_packed_block_matches_each_document_run_alone(kind, attn, monkeypatch):
    """flex_attention gets a BlockMask (what the GPU runs), the others the dense additive mask."""
    # transformers compiles flex attention; on a CPU that needs a C++ toolchain and inductor's CPU flex
    # template, which are not what is under test here: run torch's eager flex attention instead.
    eager_flex_attention(monkeypatch)
    model = _tiny(kind, attn)
    a, b = [3, 7, 9, 11, 4], [5, 8, 2, 6]
    pad_ids = [1, 2, 3]
    block = next(pack_documents([doc(a), doc(b)], block_len=len(a) + len(b) + len(pad_ids), pad_id=PAD))
    batch = stack_blocks([block])
    mask = attention_mask_for(model, batch["doc_ids"], causal=kind == "llama", dtype=torch.float32)
    assert type(mask).__name__ == ("BlockMask" if attn == "flex_attention" else "Tensor")
    with torch.no_grad():
        ids, pos = batch["input_ids"], batch["position_ids"]
        packed = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[0]
        alone_a = model(input_ids=torch.tensor([a])).logits[0]
        alone_b = model(input_ids=torch.tensor([b])).logits[0]
        # Padding content must not matter: other pad ids give the same outputs for real tokens.
        other = batch["input_ids"].clone()
        other[batch["doc_ids"] < 0] = torch.tensor(pad_ids)
        repadded = model(input_ids=other, attention_mask=mask, position_ids=pos).logits[0]
        # With a plain 2D padding mask document b sees document a: the checks above are not vacuous.
        plain = (batch["doc_ids"] >= 0).long()
        leaky = model(input_ids=ids, attention_mask=plain, position_ids=pos).logits[0]
    n = len(a) + len(b)
    torch.testing.assert_close(packed[: len(a)], alone_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[len(a) : n], alone_b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(repadded[:n], packed[:n], atol=1e-5, rtol=1e-5)
    assert torch.isfinite(packed).all()
    assert not torch.allclose(leaky[len(a) : n], alone_b, atol=1e-3)
