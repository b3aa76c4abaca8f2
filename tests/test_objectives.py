import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from tiny_models import eager_flex_attention

from zoo.errors import UserError
from zoo.objectives import OBJECTIVES, CausalLM, MaskedLM, Objective, build_objective
from zoo.packing import block_attention_mask, pack_documents

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIAL = [PAD, CLS, SEP, MASK]
VOCAB = 1000


def random_docs(n, seed, max_len=60):
    """Documents [CLS] … [SEP] with random word structure (about 1 word start per 2 tokens)."""
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        length = int(torch.randint(3, max_len, (1,), generator=g))
        ids = torch.randint(4, VOCAB, (length,), generator=g).tolist()
        starts = (torch.rand(length, generator=g) < 0.5).tolist()
        docs.append({"input_ids": [CLS, *ids, SEP], "word_starts": [True, True, *starts[1:], True]})
    return docs


def blocks(n_docs=400, block_len=128, seed=0):
    return list(pack_documents(random_docs(n_docs, seed), block_len, PAD))


def mlm(**kw):
    return MaskedLM(MASK, VOCAB, SPECIAL, **kw)


def words(block):
    """Token index groups of each word (word start + following non-starts, same doc, no specials)."""
    groups, cur = [], []
    for i, (t, d, s) in enumerate(zip(block["input_ids"], block["doc_ids"], block["word_starts"])):
        inside = cur and not s and d == block["doc_ids"][cur[-1]] and t not in SPECIAL
        if not inside:
            if cur:
                groups.append(cur)
            cur = []
        if d >= 0 and t not in SPECIAL:
            cur.append(i)
    return groups + ([cur] if cur else [])


def test_mlm_rate_whole_words_and_specials():
    bs = blocks()
    batch = mlm().collate(bs, seed=1)
    assert set(batch) == {"input_ids", "doc_ids", "position_ids", "labels"}
    original = torch.tensor([b["input_ids"] for b in bs])
    doc_ids = torch.tensor([b["doc_ids"] for b in bs])
    chosen = batch["labels"] != -100
    special = torch.isin(original, torch.tensor(SPECIAL)) | (doc_ids < 0)
    assert not chosen[special].any()
    assert (batch["input_ids"][special] == original[special]).all()
    assert (batch["labels"][chosen] == original[chosen]).all()
    rate = chosen.sum().item() / (~special).sum().item()
    assert abs(rate - 0.15) < 0.01, rate
    for row, block in enumerate(bs):
        for w in words(block):
            flags = chosen[row, w]
            assert flags.all() or not flags.any(), (row, w)
    assert batch["doc_ids"].tolist() == doc_ids.tolist()  # the mask is built from it at loss time


def test_mlm_80_10_10():
    bs = blocks(n_docs=1200, seed=3)
    batch = mlm().collate(bs, seed=7)
    original = torch.tensor([b["input_ids"] for b in bs])
    chosen = batch["labels"] != -100
    got = batch["input_ids"][chosen]
    n = chosen.sum().item()
    masked = (got == MASK).sum().item() / n
    kept = (got == original[chosen]).sum().item() / n
    randomised = 1 - masked - kept
    assert n > 5_000  # sd of the 80% share is ~0.006, so the bounds below are 4+ sd wide
    assert abs(masked - 0.8) < 0.025 and abs(kept - 0.1) < 0.02 and abs(randomised - 0.1) < 0.02
    assert not torch.isin(got[got != MASK], torch.tensor(SPECIAL)).any()  # random tokens are never special


def test_mlm_token_level_and_mask_prob_option():
    bs = blocks(seed=5)
    batch = mlm(mask_prob=0.3, whole_word=False).collate(bs, seed=0)
    real = torch.tensor(
        [[d >= 0 and t not in SPECIAL for t, d in zip(b["input_ids"], b["doc_ids"])] for b in bs]
    )
    rate = (batch["labels"] != -100).sum().item() / real.sum().item()
    assert abs(rate - 0.3) < 0.01


def test_collate_is_a_function_of_seed():
    bs = blocks(n_docs=50)
    obj = mlm()
    a, b, c = obj.collate(bs, seed=11), obj.collate(bs, seed=11), obj.collate(bs, seed=12)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["labels"], c["labels"])
    # hash() may be negative: still a valid, reproducible seed
    assert torch.equal(obj.collate(bs, seed=-3)["labels"], obj.collate(bs, seed=-3)["labels"])


def test_clm_labels_ignore_document_starts_and_padding():
    docs = [{"input_ids": [5, 6, 7]}, {"input_ids": [8, 9]}]
    block = next(pack_documents(docs, block_len=7, pad_id=PAD))
    batch = CausalLM().collate([block], seed=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9, PAD, PAD]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 0]]
    assert batch["doc_ids"].tolist() == [[0, 0, 0, 1, 1, -1, -1]]
    assert (block_attention_mask(batch["doc_ids"], causal=True)[0, 0, 3, :3] < 0).all()  # 2 can't see 1


def _tiny(kind):
    from transformers import BertConfig, BertForMaskedLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    common = dict(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
    )
    if kind == "mlm":
        return BertForMaskedLM(BertConfig(**common)).eval()
    return LlamaForCausalLM(LlamaConfig(**common)).eval()


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_a_flex_attention_model_gets_a_block_mask_and_the_same_loss(kind, monkeypatch):
    """What the engine runs on CUDA (train.attention=auto): the loss builds a BlockMask from doc_ids
    for a flex model; forward values equal the dense-mask model's (FlexAttention has no CPU backward)."""
    eager_flex_attention(monkeypatch)
    obj = mlm(mask_prob=0.3) if kind == "mlm" else CausalLM()
    batch = obj.collate(blocks(n_docs=6, block_len=32), seed=2)
    model = _tiny(kind)
    with torch.no_grad():
        dense = obj.loss(model, batch)[0]
        model.set_attn_implementation("flex_attention")
        flex = obj.loss(model, batch)[0]
    torch.testing.assert_close(flex, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", ["mlm", "clm"])
def test_loss_is_mean_cross_entropy_over_labelled_tokens(kind):
    obj = mlm(mask_prob=0.3) if kind == "mlm" else CausalLM()
    batch = obj.collate(blocks(n_docs=6, block_len=32), seed=2)
    model = _tiny(kind)
    with torch.no_grad():
        total, count = obj.loss(model, batch)
        logits = model(
            input_ids=batch["input_ids"],
            attention_mask=block_attention_mask(batch["doc_ids"], causal=kind == "clm"),
            position_ids=batch["position_ids"],
        ).logits
    logp = logits.log_softmax(-1)
    terms = []
    for r in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if kind == "mlm" and batch["labels"][r, t] != -100:
                terms.append(-logp[r, t, batch["labels"][r, t]])
            if kind == "clm" and t + 1 < logits.shape[1] and batch["labels"][r, t + 1] != -100:
                terms.append(-logp[r, t, batch["labels"][r, t + 1]])
    assert len(terms) > 5
    # (sum, count): the engine divides by the count of the whole global batch.
    assert count.item() == len(terms)
    torch.testing.assert_close(total, torch.stack(terms).sum())
    torch.testing.assert_close(total / count, torch.stack(terms).mean())
    empty_total, empty_count = obj.loss(model, {**batch, "labels": torch.full_like(batch["labels"], -100)})
    assert empty_total.item() == 0.0 and empty_count.item() == 0


def test_loss_casts_the_float_mask_for_a_half_precision_model():
    from transformers import BertConfig, BertForMaskedLM

    obj = mlm()
    batch = obj.collate(blocks(n_docs=4, block_len=32), seed=0)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    model = BertForMaskedLM(cfg).eval().to(torch.bfloat16)
    # the mask is built in the model's dtype: a float32 one fails eager BERT with bf16 weights
    with torch.no_grad():
        total, count = obj.loss(model, batch)
    assert total.dtype == torch.float32 and torch.isfinite(total) and count > 0


def _tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": PAD, "[CLS]": CLS, "[SEP]": SEP, "[MASK]": MASK, "[UNK]": 4}
    vocab.update({f"w{i}": i for i in range(5, 20)})
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="[UNK]")),
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        unk_token="[UNK]",
    )


def test_build_objective_registry():
    tok = _tokenizer()
    obj = build_objective("mlm", {"mask_prob": 0.2}, tok)
    assert isinstance(obj, Objective) and obj.head == "masked_lm" and obj.mask_prob == 0.2
    assert set(obj.random_ids.tolist()) == set(range(5, 20))  # [UNK] is special, never a random replacement
    assert build_objective("clm", {}, tok).head == "causal_lm"
    assert OBJECTIVES.names()[:2] == ["clm", "mlm"]  # the built-ins come through the entry-point group
    with pytest.raises(UserError, match="did you mean 'mlm'"):
        build_objective("mlmm", {}, tok)
    with pytest.raises(UserError, match="did you mean 'mask_prob'"):
        build_objective("mlm", {"mask_prb": 0.2}, tok)
    with pytest.raises(UserError, match="mask_prob"):
        build_objective("mlm", {"mask_prob": 1.5}, tok)
