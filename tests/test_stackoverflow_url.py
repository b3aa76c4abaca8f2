"""The StackOverflow and URL domains' own pieces: tokenizer recipes, Posts.xml and URL readers, the urlbert
objective, ROC-AUC from class scores, and the bad inputs the issue lists (file:line, exit 2, nothing written).
The shared contract (sample corpus, tasks, fine-tune, embedded pretraining) is tests/test_domains.py."""

from __future__ import annotations

import csv
import itertools
import math
import tracemalloc
from pathlib import Path

import pytest
import torch
from conftest import shared_data
from test_cli import assert_user_error, zoo

from zoo.corpus import read_corpus
from zoo.domain import CorpusSpec, TaskSpec
from zoo.errors import UserError
from zoo.registry import get_domain
from zoo.stackexchange import code_blocks, html_to_text, read_posts
from zoo.tokenizer import TokenizerRecipe, load_recipe, train_tokenizer
from zoo.urls import check_url

SO = get_domain("stackoverflow")
URL = get_domain("url")
TINY = [
    "model.hidden_size=32",
    "model.num_hidden_layers=1",
    "model.num_attention_heads=2",
    "model.intermediate_size=64",
    "tokenizer.vocab_size=400",
    "data.seq_len=32",
    "train.batch_size=4",
    "train.max_steps=2",
]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------------- tokenizers


def test_stackoverflow_tokenizer_round_trips_real_code_blocks_exactly() -> None:
    folder = shared_data("stackoverflow", "so_question_quality_hqlq")
    train, held_out = _rows(folder / "train.csv"), _rows(folder / "dev.csv") + _rows(folder / "test.csv")
    docs = [f"{r['Title']}\n\n{html_to_text(r['Body'], 'train')}" for r in train]
    tok = train_tokenizer(load_recipe("stackoverflow-spm-bpe"), iter(docs), vocab_size=3000)
    blocks = [b for r in held_out for b in code_blocks(r["Body"]) if b.strip()]
    assert len(blocks) > 150 and sum("\n    " in b for b in blocks) > 50  # real, indented code
    for block in blocks:
        ids = tok(block, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids) == block
    # Unseen characters fall back to bytes, never [UNK], and still decode exactly.
    odd = "\tif x:\r\n\t\treturn '→ ∀ 😀'\u00a0  \n\n"
    ids = tok(odd, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids and "<0xF0>" in tok.convert_ids_to_tokens(ids)
    assert tok.decode(ids) == odd
    assert tok.decode(tok(odd)["input_ids"], skip_special_tokens=True) == odd


def test_url_tokenizer_keeps_delimiters_escapes_and_punycode_whole() -> None:
    docs = list(itertools.islice(read_corpus(URL.corpus, [URL.sample_corpus]), 3000))
    tok = train_tokenizer(load_recipe("url-bpe"), iter(docs), vocab_size=1500)
    url = "https://xn--bcher-kva.example/a%2Fb/c?q=1&r=x-y_z~#top"
    pieces = tok.convert_ids_to_tokens(tok(url, add_special_tokens=False)["input_ids"])
    for piece in ("://", "xn--", "%2F", "/", "?", "=", "&", "-", "_", "~", "#", "."):
        assert piece in pieces, (piece, pieces)
    assert tok.convert_ids_to_tokens(tok("é", add_special_tokens=False)["input_ids"]) == ["<0xC3>", "<0xA9>"]
    assert all(len(p) == 1 or not any(c in p for c in "/?&=#") or p == "://" for p in pieces), pieces
    assert tok.decode(tok(url)["input_ids"], skip_special_tokens=True) == url
    assert len(tok) <= 1500 + 1  # the byte pieces count in the vocabulary; xn-- is added whole


def test_url_tokenizer_round_trips_real_urls() -> None:
    urls = list(read_corpus(URL.corpus, [shared_data("url", "phishcrawl") / "train.csv"]))
    tok = train_tokenizer(load_recipe("url-bpe"), iter(urls[:20000]), vocab_size=5000)
    assert 4500 < len(tok) <= 5000 + 1  # learned pieces + the 256 byte pieces, then the atomic xn--
    for url in urls[20000:22000]:
        ids = tok(url, add_special_tokens=False)["input_ids"]
        assert tok.unk_token_id not in ids and tok.decode(ids) == url


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        (
            {"algorithm": "wordpiece", "pre_tokenizer": "bert", "byte_fallback": True},
            "only applies to algorithm 'bpe'",
        ),
        ({"pre_tokenizer": "regex", "pattern": None}, "needs a pattern"),
        ({"pattern": "[a-"}, "is not a regular expression"),
        ({"vocab_size": 200}, "must exceed the 256 byte pieces"),
    ],
)
def test_recipe_rejects_inconsistent_piece_options(changes: dict, needle: str) -> None:
    base = {
        "name": "t",
        "algorithm": "bpe",
        "vocab_size": 1000,
        "special_tokens": {"pad": "[PAD]", "unk": "[UNK]"},
        "pre_tokenizer": "regex",
        "pattern": r"\s",
        "byte_fallback": True,
    }
    with pytest.raises(UserError, match=needle):
        TokenizerRecipe.from_dict({**base, **changes})


# --------------------------------------------------------------------------------------- Posts.xml


def _attr(value: str) -> str:
    """An attribute value as the dump writes it: entities, and newlines/tabs as character references."""
    import html

    return html.escape(value, quote=True).replace("\n", "&#xA;").replace("\t", "&#x9;")


def _post(i: int, kind: str, body: str, title: str | None = None) -> str:
    extra = f' Title="{_attr(title)}"' if title is not None else ""
    return f'  <row Id="{i}" PostTypeId="{kind}" Body="{_attr(body)}"{extra} />'


def _posts_xml(path: Path, rows: list[str]) -> Path:
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + "\n".join(rows) + "\n</posts>\n")
    return path


BROKEN = '  <row Id="9" PostTypeId="2" Body="&lt;p&gt;x&lt;/p&gt;" <broken />'
CODE = "def f(x):\n    if x < 1:\n\n\n        return '<b>'\n\treturn x\n"


def test_posts_keep_code_verbatim_and_join_title_and_comments(tmp_path: Path) -> None:
    import html

    body = f"<p>Why does\n<code>f</code> fail?</p>\n\n<pre><code>{html.escape(CODE)}</code></pre>\n<p>Thanks &amp; bye</p>"
    posts = _posts_xml(
        tmp_path / "Posts.xml",
        [
            _post(1, "1", body, "Recursion & f"),
            _post(2, "2", "<p>Use a loop.</p>"),
            _post(3, "5", "<p>wiki</p>"),
        ],
    )
    docs = list(read_posts(posts))
    assert docs == [f"Recursion & f\n\nWhy does f fail?\n{CODE}Thanks & bye", "Use a loop."]
    (tmp_path / "Comments.xml").write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<comments>\n'
        '  <row Id="7" PostId="2" Text="second" />\n  <row Id="5" PostId="2" Text="first" />\n'
        '  <row Id="6" PostId="1" Text="nice question" />\n</comments>\n'
    )
    with_comments = list(read_corpus(CorpusSpec("stackexchange", {"comments": True}), [tmp_path]))
    assert with_comments == [docs[0] + "\n\nnice question", "Use a loop.\n\nfirst\n\nsecond"]


def test_posts_stream_with_flat_memory(tmp_path: Path) -> None:
    body = "<p>" + "text " * 60 + "</p><pre><code>x = 1\n</code></pre>"
    path = tmp_path / "Posts.xml"
    with path.open("w") as f:
        f.write('<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for i in range(20000):
            f.write(_post(i, "2", body) + "\n")
        f.write("</posts>\n")
    size = path.stat().st_size
    tracemalloc.start()
    count = sum(1 for _ in read_posts(path))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == 20000 and size > 8_000_000
    assert peak < size / 10, (peak, size)  # a tree of every row would hold several times the file


def test_malformed_xml_and_non_html_bodies_name_the_line(tmp_path: Path) -> None:
    good = [_post(i, "2", "<p>fine</p>") for i in range(1, 4)]
    broken = _posts_xml(tmp_path / "Posts.xml", [*good, BROKEN, *good])
    seen: list[str] = []
    with pytest.raises(UserError, match=r"Posts\.xml:6: malformed XML"):
        seen.extend(read_posts(broken))
    assert len(seen) == 3  # what came before is delivered, and the stream ends in an error, not silently
    plain = _posts_xml(tmp_path / "plain.xml", [*good, _post(4, "1", "just words, no markup", "T")])
    with pytest.raises(UserError, match=r"plain\.xml:6: the post body is not HTML"):
        list(read_posts(plain))
    with pytest.raises(UserError, match=r"Comments\.xml"):
        list(read_posts(broken, comments=True))


def test_question_quality_loader_reads_html_bodies_and_names_bad_lines(tmp_path: Path) -> None:
    from zoo.benchmarks.kinds import get_kind

    task = SO.task("so_question_quality_hqlq")
    kind = get_kind(task.type)
    examples = kind.load(task, SO.sample_dir / task.name, "train")
    assert {e.label for e in examples} == {"HQ", "LQ"} and all("<p>" not in e.text_pair for e in examples)
    (tmp_path / "train.csv").write_text(
        "Id,Title,Body,Tags,CreationDate,Y\n1,T,<p>ok</p>,<x>,d,HQ\n2,T,no html here,<x>,d,LQ\n"
    )
    with pytest.raises(UserError, match=r"train\.csv:3: the post body is not HTML"):
        kind.load(task, tmp_path, "train")


# -------------------------------------------------------------------------------------------- URLs


def test_url_checks() -> None:
    assert check_url("\t https://a.b/c d \n", "f:1") == "https://a.b/c d"
    with pytest.raises(UserError, match=r"f:2: empty URL"):
        check_url("  \t", "f:2")
    with pytest.raises(UserError, match=r"f:3: control character '\\x00' at position 11"):
        check_url("http://a.b\x00/x", "f:3")


def test_url_corpus_reads_text_lines_and_csv_url_columns(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("http://a.example/\n\n  https://b.example/x  \n")
    (tmp_path / "b.csv").write_text("url,label\nhttp://c.example/,legit\n")
    assert list(read_corpus(URL.corpus, [tmp_path])) == [
        "http://a.example/",
        "https://b.example/x",
        "http://c.example/",
    ]
    (tmp_path / "c.txt").write_text("http://ok/\nhttp://tab\there/\n")
    with pytest.raises(UserError, match=r"c\.txt:2: control character"):
        list(read_corpus(URL.corpus, [tmp_path / "c.txt"]))
    (tmp_path / "d.csv").write_text("url,label\nhttp://ok/,legit\n ,malicious\n")
    with pytest.raises(UserError, match=r"d\.csv:3: empty URL"):
        list(read_corpus(URL.corpus, [tmp_path / "d.csv"]))


def test_real_tasks_load_with_their_published_sizes() -> None:
    from zoo.benchmarks.kinds import get_kind

    expected = {
        ("stackoverflow", "so_question_quality_hqlq"): (1157, 157, 177),
        ("url", "phishcrawl"): (61095, 20365, 10135),
        ("url", "phiusiil"): (65838, 9468, 9433),
    }
    for (domain, name), sizes in expected.items():
        task = get_domain(domain).task(name)
        folder = shared_data(domain, name)
        got = tuple(len(get_kind(task.type).load(task, folder, s)) for s in ("train", "dev", "test"))
        assert got == sizes, (name, got)
    ner = SO.task("so_ner")
    sentences = get_kind(ner.type).load(ner, shared_data("stackoverflow", "so_ner"), "train")
    types = {t[2:] for s in sentences for t in s.tags if t != "O"}
    assert len(sentences) == 14545 and {"Library_Function", "Code_Block", "Data_Structure"} <= types


# ---------------------------------------------------------------------------------- urlbert objective


def _urlbert(**options: float) -> tuple[object, object, dict]:
    from zoo.config import PretrainConfig, build_config
    from zoo.pretrain import build_domain_objective, build_model, obtain_tokenizer, prepare_data

    overrides = [*TINY, "data.max_documents=300", *(f"objective.{k}={v}" for k, v in options.items())]
    cfg = build_config(PretrainConfig, URL.pretrain_defaults, overrides=overrides)
    tok = obtain_tokenizer(URL, cfg, None)
    objective = build_domain_objective(URL, cfg, tok)
    torch.manual_seed(0)
    model = build_model(URL, cfg, objective, tok, None)
    data = prepare_data(URL, cfg, tok)
    return objective, model, objective.collate(data.train[:6], seed=3)


def test_urlbert_with_aux_terms_off_is_exactly_mlm() -> None:
    from zoo.objectives import token_loss_sum

    objective, model, batch = _urlbert(contrastive_weight=0, vat_weight=0)
    for module in model.modules():  # train mode, so the aux terms would run, but no dropout noise
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.train()
    mlm_sum, mlm_count = token_loss_sum(model, batch, causal=False)
    total, count = objective.loss(model, batch)
    assert int(count) == int(mlm_count) > 0 and torch.allclose(total, mlm_sum)
    with_terms, _ = _urlbert()[0].loss(model, batch)
    assert float(with_terms) > float(total)


def test_urlbert_terms_add_up_and_train() -> None:
    objective, model, batch = _urlbert()
    assert {"view_ids", "doc_ids"} <= set(batch) and not torch.equal(batch["view_ids"], batch["input_ids"])
    model.train()
    total, count = objective.loss(model, batch)
    model.eval()
    with torch.no_grad():
        mlm_only, _ = objective.loss(model, batch)  # eval: the MLM term alone, comparable across ablations
    assert float(total / count) > float(mlm_only / count) + 0.05
    total.backward()
    emb = model.get_input_embeddings().weight.grad
    assert emb is not None and float(emb.abs().sum()) > 0


def test_info_nce_and_segment_means() -> None:
    from zoo.objectives_urlbert import info_nce, segment_means

    hidden = torch.arange(2 * 4 * 2, dtype=torch.float32).view(2, 4, 2)
    doc_ids = torch.tensor([[0, 0, 1, -1], [0, 1, 1, 1]])
    means = segment_means(hidden, doc_ids)
    expected = torch.tensor([[1.0, 2.0], [4.0, 5.0], [8.0, 9.0], [12.0, 13.0]])
    assert torch.allclose(means, expected)
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    assert float(info_nce(z, z, 0.05)) < 0.01  # each row is its own best match
    shuffled = info_nce(z, z[torch.randperm(8, generator=torch.Generator().manual_seed(1))], 1.0)
    assert float(shuffled) > float(info_nce(z, z, 1.0))


def test_vat_direction_beats_a_random_one() -> None:
    from zoo.objectives import model_mask
    from zoo.objectives_urlbert import _unit, token_kl

    objective, model, batch = _urlbert()
    model.eval()  # deterministic passes: only the perturbation differs
    mask = model_mask(model, batch, causal=False)
    with torch.no_grad():
        clean = model(
            input_ids=batch["input_ids"], attention_mask=mask, position_ids=batch["position_ids"]
        ).logits
    torch.manual_seed(0)
    adversarial = objective.virtual_adversarial(model, batch, mask, clean)
    embeds = model.get_input_embeddings()(batch["input_ids"]).detach()
    scale = embeds.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        noise = objective.vat_epsilon * scale * _unit(torch.randn_like(embeds))
        logits = model(
            inputs_embeds=embeds + noise, attention_mask=mask, position_ids=batch["position_ids"]
        ).logits
        random_kl = token_kl(clean, logits, batch["doc_ids"] >= 0)
    assert float(adversarial) > 2 * float(random_kl) > 0


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"vat_weight": -1}, "objective.vat_weight=-1.0 is out of range: it must be ≥ 0"),
        ({"mlm_weight": 0, "contrastive_weight": 0, "vat_weight": 0}, "every term has weight 0"),
        ({"temperature": 0}, "objective.temperature=0.0 is out of range: it must be > 0"),
        ({"vat_iterations": 0}, "objective.vat_iterations=0 is out of range: it must be ≥ 1"),
        ({"contrast": 1}, "unknown option 'objective.contrast' for objective 'urlbert'"),
    ],
)
def test_urlbert_rejects_bad_options(options: dict, needle: str) -> None:
    from zoo.objectives import build_objective

    tok = train_tokenizer(load_recipe("url-bpe"), iter(["http://a.b/c"] * 50), vocab_size=300)
    with pytest.raises(UserError, match=needle):
        build_objective("urlbert", options, tok)


# ------------------------------------------------------------------------------------ ROC-AUC


def test_sequence_kind_scores_roc_auc_from_class_scores() -> None:
    from zoo.benchmarks.kinds import get_kind
    from zoo.benchmarks.tasks import TextExample

    kind = get_kind("sequence_classification")
    task = TaskSpec("t", kind.name, "csv", ("f1", "accuracy", "roc_auc"), metric_options={"pos_label": "bad"})
    examples = [TextExample(str(i), None, y) for i, y in enumerate(["bad", "ok", "bad", "ok"])]
    labels = ["bad", "ok"]
    # Arg-max: bad ok ok bad (2 of 4 right); ranking by P(bad), the bad ones (0.9, 0.45) beat the ok ones
    # (0.3, 0.55) in 3 of 4 pairs: AUC 0.75.
    probs = [[0.9, 0.1], [0.3, 0.7], [0.45, 0.55], [0.55, 0.45]]
    scores = kind.score(task, examples, probs, labels)
    assert scores["accuracy"] == 0.5 and math.isclose(scores["roc_auc"], 0.75)
    assert math.isclose(scores["f1"], 0.5)
    with pytest.raises(UserError, match="'roc_auc' needs class scores"):
        kind.score(task, examples, [0, 1, 1, 0], labels)  # bare class ids cannot be ranked


# -------------------------------------------------------------------------- bad input through the CLI


def test_bad_inputs_exit_2_and_write_nothing(tmp_path: Path) -> None:
    good = [_post(i, "2", "<p>fine</p>") for i in range(1, 4)]
    _posts_xml(tmp_path / "Posts.xml", [*good, BROKEN, *good])
    assert_user_error(
        zoo("pretrain", "stackoverflow", "--corpus", "Posts.xml", *TINY, cwd=tmp_path), "Posts.xml:6"
    )
    (tmp_path / "urls.txt").write_text("http://ok.example/\nhttp://bad\x07.example/\n")
    assert_user_error(
        zoo("pretrain", "url", "--corpus", "urls.txt", *TINY, cwd=tmp_path), "urls.txt:2", "control"
    )
    for domain, task, files, needles in (
        ("stackoverflow", "so_ner", {"train.txt": "Use\tO\tUse\tO\npandas\tB-Library\tpandas\n\n"},
         ("train.txt:2", "expected 4 tab-separated columns, found 3")),
        ("url", "phishcrawl", {"train.csv": "url,label\nhttp://a.example/,legit\n,malicious\n"},
         ("train.csv:3: empty URL",)),
    ):  # fmt: skip
        folder = tmp_path / task
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text)
        (folder / name.replace("train", "test")).write_text(text.splitlines()[0] + "\n")
        args = ("finetune", domain, "--task", task, "--data", str(folder), "--no-record")
        assert_user_error(zoo(*args, cwd=tmp_path), *needles)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("script", "files"), [("generate_stackoverflow.py", 7), ("generate_url.py", 7)])
def test_sample_generators_are_deterministic(script: str, files: int, tmp_path: Path) -> None:
    import subprocess
    import sys

    samples = Path(__file__).resolve().parent.parent / "domains" / "samples"
    subprocess.run([sys.executable, str(samples / script), "--out", str(tmp_path)], check=True, timeout=120)
    produced = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(produced) == files
    for rel in produced:
        assert (tmp_path / rel).read_bytes() == (samples / rel).read_bytes(), rel


def test_task_corpus_writes_train_texts_without_labels(tmp_path: Path) -> None:
    import json

    from zoo.task_corpus import main

    out = tmp_path / "so.jsonl"
    assert main(["stackoverflow", "--data", str(SO.sample_dir), "--out", str(out)]) == 0
    docs = [json.loads(line)["text"] for line in out.read_text().splitlines()]
    assert len(docs) == 400 + 240  # so_ner train sentences + question-quality train questions
    assert not any("B-" in d or d.endswith(("HQ", "LQ")) for d in docs)
    assert list(read_corpus(CorpusSpec("text"), [out])) == docs
    assert main(["stackoverflow", "--data", str(tmp_path / "none"), "--out", str(out)]) == 2
    assert out.is_file() and not (tmp_path / ".so.jsonl.tmp").exists()
