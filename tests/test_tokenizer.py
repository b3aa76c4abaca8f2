"""Tokenizer recipes: strict loading, training per algorithm, the 6-mer policy, word starts."""

from __future__ import annotations

import itertools
import logging
import random
from pathlib import Path

import pytest

from zoo.errors import UserError
from zoo.tokenizer import (
    TokenizerRecipe,
    list_recipes,
    load_recipe,
    recipes_dir,
    train_tokenizer,
    word_start_mask,
)

SAMPLES = Path(__file__).resolve().parent.parent / "domains" / "samples"


def _words(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "po", "qu", "xe", "fa", "dor"]
    return ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(n)]


def _texts(lines: int = 300, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = _words(600, seed) + ["Parkinson's", "Café", "BRCA1", "nephrotoxicity"]
    return [" ".join(rng.choice(vocab) for _ in range(20)) for _ in range(lines)]


def _dna(n: int, length: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("ACGT") for _ in range(length)) for _ in range(n)]


def test_shipped_recipes_load_and_are_named_after_their_file():
    names = list_recipes()
    assert {"biomedical-wordpiece", "genomic-kmer6", "genomic-bpe"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.name == name
        assert Path(recipe.source) == recipes_dir() / f"{name}.yaml"
    bio = load_recipe("biomedical-wordpiece")
    assert (bio.algorithm, bio.vocab_size, bio.post_processor) == ("wordpiece", 30522, "bert")
    assert "lowercase" in bio.normalizer and bio.special_tokens["mask"] == "[MASK]"


def test_recipes_folder_is_data_only():
    assert not list(recipes_dir().glob("*.py")), "a Python file in tokenizers/ would shadow HF tokenizers"


def test_unknown_recipe_name_suggests_the_close_one():
    with pytest.raises(UserError, match="did you mean 'genomic-kmer6'"):
        load_recipe("genomic-kmer")


def test_unknown_key_names_file_and_valid_keys(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nalgorithm: bpe\nvocab_size: 100\nspecial_tokens: {unk: '<unk>'}\nvocab_szie: 3\n"
    )
    with pytest.raises(UserError) as err:
        load_recipe(path)
    message = str(err.value)
    assert (
        str(path) in message
        and "vocab_szie" in message
        and "valid keys" in message
        and "min_frequency" in message
    )


def test_invalid_values_are_user_errors(tmp_path):
    base = "name: x\nvocab_size: 100\nspecial_tokens: {unk: '<unk>', cls: '[CLS]', sep: '[SEP]'}\n"
    cases = {
        "algorithm: wordpeice\n": "did you mean 'wordpiece'",
        "algorithm: kmer\nk: 6\npre_tokenizer: kmer\n": "vocab_size of a 6-mer recipe is fixed",
        "algorithm: unigram\npre_tokenizer: whitespace\n": "unigram",
        "algorithm: bpe\npost_processor: bos_eos\n": "bos, eos",
    }
    for i, (extra, expected) in enumerate(cases.items()):
        path = tmp_path / f"r{i}.yaml"
        path.write_text(base + extra)
        with pytest.raises(UserError, match=expected):
            load_recipe(path)
    with pytest.raises(UserError, match="does not exist"):
        load_recipe(tmp_path / "missing.yaml")


def test_wordpiece_is_uncased_reaches_requested_size_and_keeps_specials(tmp_path):
    recipe = load_recipe("biomedical-wordpiece")
    tok = train_tokenizer(recipe, _texts(), vocab_size=400)
    assert len(tok) == 400
    assert tok.convert_ids_to_tokens(list(range(5))) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert (tok.pad_token_id, tok.mask_token_id, tok.cls_token_id, tok.sep_token_id) == (0, 4, 2, 3)
    assert tok("BRCA1 Café").input_ids == tok("brca1 cafe").input_ids  # uncased, accents stripped
    enc = tok("kalo [MASK] Parkinson's", "mi")
    pieces = tok.convert_ids_to_tokens(enc.input_ids)
    assert pieces[0] == "[CLS]" and pieces.count("[SEP]") == 2 and "[MASK]" in pieces
    assert set(enc.token_type_ids) == {0, 1}
    tok.save_pretrained(tmp_path)
    from transformers import AutoTokenizer

    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("kalo mi").input_ids == tok("kalo mi").input_ids and again.mask_token == "[MASK]"
    assert again.model_max_length == 512


def test_small_corpus_gives_smaller_vocab_with_a_logged_reason(caplog):
    with caplog.at_level(logging.WARNING, logger="zoo.tokenizer"):
        tok = train_tokenizer(load_recipe("biomedical-wordpiece"), ["kalo mi ne"] * 5, vocab_size=5000)
    assert len(tok) < 5000
    assert "too few distinct pieces" in caplog.text


def test_empty_training_text_is_a_user_error():
    with pytest.raises(UserError, match="no training text"):
        train_tokenizer(load_recipe("biomedical-wordpiece"), iter([]), vocab_size=100)


def test_kmer_vocab_is_exactly_specials_singles_and_all_kmers():
    recipe = load_recipe("genomic-kmer6")
    tok = train_tokenizer(recipe, [])
    vocab = tok.get_vocab()
    kmers = {"".join(p) for p in itertools.product("ACGT", repeat=6)}
    expected = kmers | set("ACGTN") | {"<pad>", "<unk>", "<s>", "</s>", "<mask>"}
    assert set(vocab) == expected and len(tok) == 4**6 + 5 + 5 == recipe.vocab_size
    assert (tok.pad_token_id, tok.unk_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2, 3)
    assert tok.model_max_length == 1024


@pytest.mark.parametrize(
    "seq", ["A", "ACGTA", "ACGTACGTA", "ACGTACGTACGTACGTACGTAC", "NNNNNNNN", "ACGNACGTACGTTT"]
)
def test_kmer_round_trips_and_frames_non_overlapping(seq):
    tok = train_tokenizer(load_recipe("genomic-kmer6"), [])
    enc = tok(seq)
    assert tok.decode(enc.input_ids, skip_special_tokens=True) == seq
    pieces = tok.convert_ids_to_tokens(enc.input_ids)
    assert pieces[0] == "<s>" and pieces[-1] == "</s>" and "<unk>" not in pieces
    assert all(len(p) in (1, 6) for p in pieces[1:-1])


def test_kmer_policy_for_tail_soft_masking_n_and_iupac():
    tok = train_tokenizer(load_recipe("genomic-kmer6"), [])

    def pieces(s: str) -> list[str]:
        return tok.convert_ids_to_tokens(tok(s, add_special_tokens=False).input_ids)

    assert pieces("ACGTACGTA") == ["ACGTAC", "G", "T", "A"]  # tail shorter than k -> single bases
    assert pieces("acgtacgg") == ["ACGTAC", "G", "G"]  # soft-masked (lowercase) input is uppercased
    assert pieces("AAANCCCCCCC") == ["A", "A", "A", "N", "CCCCCC", "C"]  # N alone, framing restarts
    assert pieces("ACGRYT") == ["A", "C", "G", "N", "N", "T"]  # IUPAC codes -> N
    assert tok.decode(tok("ACGTACRYKMSWBDHV").input_ids, skip_special_tokens=True) == "ACGTAC" + "N" * 10


def test_dna_bpe_trains_and_round_trips():
    tok = train_tokenizer(load_recipe("genomic-bpe"), _dna(30, 1000), vocab_size=300)
    assert len(tok) == 300
    seq = "ACGTTGCAACGTNNACGTAGCTAGCTAGGATC"
    ids = tok(seq.lower()).input_ids
    assert tok.decode(ids, skip_special_tokens=True) == seq
    assert tok.unk_token_id not in ids  # N is in the alphabet even when training saw none
    assert max(len(p) for p in tok.get_vocab()) > 3  # merges happened


def test_word_start_mask_per_algorithm():
    wp = train_tokenizer(load_recipe("biomedical-wordpiece"), _texts(), vocab_size=200)
    ids = wp("kalominedor zz").input_ids
    pieces = wp.convert_ids_to_tokens(ids)
    starts = word_start_mask(wp, ids)
    assert starts[0] is False and starts[-1] is False  # [CLS], [SEP]
    assert starts[1:-1] == [not p.startswith("##") for p in pieces[1:-1]]
    assert sum(starts) == 2 and len(pieces) > 4  # two words, split into several pieces

    kmer = train_tokenizer(load_recipe("genomic-kmer6"), [])
    ids = kmer("ACGTACGTA").input_ids
    assert word_start_mask(kmer, ids) == [False, True, True, True, True, False]  # every base token is a word


def test_other_algorithms_from_a_recipe_dict_keep_atomic_tokens():
    specials = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>"}
    texts = ["Patient [**Name**] was seen on [**Date**] for chest pain."] * 20 + _texts(100)
    for algorithm, pre in (("unigram", "metaspace"), ("bpe", "byte_level"), ("char", "char")):
        recipe = TokenizerRecipe(
            name=f"t-{algorithm}",
            algorithm=algorithm,
            vocab_size=150,
            special_tokens=specials,
            pre_tokenizer=pre,
            post_processor="bos_eos",
            min_frequency=1,
            atomic_tokens=("[**Name**]", "[**Date**]"),
        )
        tok = train_tokenizer(recipe, texts)
        text = "Patient [**Name**] was seen"
        ids = tok(text).input_ids
        assert "[**Name**]" in tok.convert_ids_to_tokens(ids), algorithm
        assert tok.decode(ids, skip_special_tokens=True) == text, algorithm


def test_embedded_default_corpus_trains_a_small_wordpiece():
    lines = (SAMPLES / "biomedical" / "corpus.txt").read_text(encoding="utf-8").splitlines()
    tok = train_tokenizer(load_recipe("biomedical-wordpiece"), lines, vocab_size=1500)
    assert len(tok) == 1500
    # in-domain vocabulary: domain words are single pieces
    assert tok.tokenize("Levodopa in Parkinson's disease: nephrotoxicity") == [
        "levodopa",
        "in",
        "parkinson",
        "'",
        "s",
        "disease",
        ":",
        "nephrotoxicity",
    ]
