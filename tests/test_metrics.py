"""Metric modules: hand-computed entity F1 (strict IOB2), classification and multi-label scores, loaded offline."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before evaluate/huggingface_hub read it at import

import pytest

from zoo.benchmarks import metrics
from zoo.benchmarks.metrics import compute, load_metric, module_path
from zoo.errors import UserError


@pytest.fixture(scope="module", autouse=True)
def isolated_caches(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Evaluate's scratch data goes to a temp ZOO_HOME (its module copies: see conftest)."""
    home = tmp_path_factory.mktemp("zoo_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ZOO_HOME", str(home))
        load_metric.cache_clear()
        yield
    load_metric.cache_clear()


# ---------------------------------------------------------------- entity-level F1

# Gold: D(s1, 0-1), C(s1, 3), D(s2, 0-2). Predicted in strict IOB2: C(s1, 3) and D(s2, 0-1) only:
# "I-D I-D" has no B-D so it is no entity, and D(s2, 0-1) is a partial match (wrong right boundary).
REFS = [["B-D", "I-D", "O", "B-C"], ["B-D", "I-D", "I-D", "O"]]
PREDS = [["I-D", "I-D", "O", "B-C"], ["B-D", "I-D", "O", "O"]]


def test_strict_entity_scores_by_hand() -> None:
    r = compute("seqeval_f1", PREDS, REFS)
    # 1 true positive of 2 predicted, 3 gold: P = 1/2, R = 1/3, F1 = 2PR/(P+R) = 0.4
    assert r["precision"] == pytest.approx(1 / 2)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(0.4)
    assert r["accuracy"] == pytest.approx(6 / 8)  # token level: s1 pos 0 and s2 pos 2 wrong
    assert (r["f1/C"], r["support/C"]) == (1.0, 1.0)
    assert (r["precision/D"], r["recall/D"], r["f1/D"], r["support/D"]) == (0.0, 0.0, 0.0, 2.0)


def test_strict_differs_from_lenient_conlleval() -> None:
    from seqeval.metrics import f1_score

    # Lenient (conlleval) reads the stray "I-D I-D" as an entity that matches gold: F1 2/3, not 0.4.
    assert f1_score(REFS, PREDS) == pytest.approx(2 / 3)
    assert compute("seqeval_f1", PREDS, REFS)["f1"] == pytest.approx(0.4)


def test_entity_scores_perfect_and_empty_predictions() -> None:
    assert compute("seqeval_f1", REFS, REFS)["f1"] == 1.0
    none = compute("seqeval_f1", [["O"] * 4, ["O"] * 4], REFS)
    assert (none["precision"], none["recall"], none["f1"]) == (0.0, 0.0, 0.0)  # no nan, no warning value


# ---------------------------------------------------------------- classification


def test_binary_classification_by_hand() -> None:
    r = compute("classification", [0, 1, 1, 0], [0, 1, 0, 0])
    # TP=1 TN=2 FP=1 FN=0. Class 0: P=1, R=2/3, F1=0.8; class 1: P=1/2, R=1, F1=2/3.
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["macro_f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert r["f1"] == pytest.approx(2 / 3)  # 0/1 labels: binary F1 of class "1"
    assert r["mcc"] == pytest.approx((1 * 2 - 1 * 0) / math.sqrt(2 * 1 * 3 * 2))


def test_multiclass_classification_by_hand() -> None:
    r = compute("classification", ["no", "maybe", "yes", "no"], ["no", "maybe", "yes", "yes"])
    # Per class F1: no 2/3, maybe 1, yes 2/3. MCC = (c*s - Σp_k t_k) / sqrt((s² - Σp_k²)(s² - Σt_k²))
    # with c=3 correct, s=4, predicted counts (2,1,1), true counts (1,1,2): (12 - 5) / sqrt(10 * 10) = 0.7.
    assert r["accuracy"] == pytest.approx(0.75)
    assert r["macro_f1"] == pytest.approx(7 / 9)
    assert r["mcc"] == pytest.approx(0.7)
    assert "f1" not in r  # ambiguous for 3 classes unless an average is asked for
    assert compute("classification", ["a", "b"], ["a", "a"], average="macro")["f1"] == pytest.approx(
        (2 / 3 + 0) / 2
    )


def test_pos_label_gives_f1_of_that_class() -> None:
    refs, preds = ["bad", "bad", "ok", "ok", "meh"], ["bad", "ok", "bad", "ok", "meh"]
    # Class "bad": TP 1, FP 1, FN 1 → 1/2, with three classes (sklearn's average="binary" would refuse them).
    assert compute("classification", preds, refs, pos_label="bad")["f1"] == pytest.approx(0.5)
    assert compute("classification", [0, 1, 1], [0, 1, 0], pos_label=0)["f1"] == pytest.approx(
        2 / 3
    )  # class "0"


def test_compute_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        compute("classification", [0, 1], [0])
    with pytest.raises(UserError, match="unknown metric module 'seqeval' — did you mean 'seqeval_f1'"):
        compute("seqeval", [["O"]], [["O"]])


# ---------------------------------------------------------------- multi-label (LexGLUE)

# Label space A, B, C. Gold {A}, {A,B}, {}, {}; predicted {A}, {B}, {C}, {}.
ML_REFS = [["A"], ["A", "B"], [], []]
ML_PREDS = [["A"], ["B"], ["C"], []]


def test_multi_label_lexglue_none_column_by_hand() -> None:
    r = compute("multi_label", ML_PREDS, ML_REFS, labels=["A", "B", "C"])
    # Columns A, B, C + 'none' (1 when an example has no label). Per column: A TP1 FN1 → 2/3; B TP1 → 1;
    # C FP1 → 0; none TP1 (4th) FN1 (3rd) → 2/3. Macro = (2/3 + 1 + 0 + 2/3) / 4 = 7/12.
    # Micro: TP 3, FP 1, FN 2 → 2·3 / (2·3 + 1 + 2) = 2/3.
    assert r["macro_f1"] == pytest.approx(7 / 12)
    assert r["micro_f1"] == pytest.approx(2 / 3)
    # 'Has any label': gold 1,1,0,0; predicted 1,1,1,0 → TP 2, FP 1, FN 0 → 4/5.
    assert r["any_label_f1"] == pytest.approx(0.8)


def test_multi_label_without_none_column_and_label_space() -> None:
    r = compute("multi_label", ML_PREDS, ML_REFS, labels=["A", "B", "C"], none_class=False)
    # A 2/3, B 1, C 0 → macro 5/9; micro TP 2, FP 1, FN 1 → 2/3.
    assert (r["macro_f1"], r["micro_f1"]) == (pytest.approx(5 / 9), pytest.approx(2 / 3))
    # A label of the space that nobody has nor predicts still counts (F1 0), as in LexGLUE's macro.
    wider = compute("multi_label", ML_PREDS, ML_REFS, labels=["A", "B", "C", "D"], none_class=False)
    assert wider["macro_f1"] == pytest.approx(5 / 12)
    assert compute("multi_label", ML_REFS, ML_REFS)["macro_f1"] == 1.0
    with pytest.raises(ValueError, match=r"labels \['C'\] are not in the label space"):
        compute("multi_label", ML_PREDS, ML_REFS, labels=["A", "B"])


# ---------------------------------------------------------------- loading through evaluate, offline


def test_modules_ship_inside_the_package() -> None:
    # Resolved next to the package's own __init__, so an installed wheel finds its package-data copy.
    assert module_path("seqeval_f1").parent == Path(metrics.__file__).parent
    assert module_path("classification").name == "classification.py"
    assert module_path("multi_label").parent == module_path("seqeval_f1").parent
    with pytest.raises(UserError, match="unknown metric module 'acuracy'"):
        module_path("acuracy")


def test_evaluate_load_offline_in_fresh_process(tmp_path: Path) -> None:
    """A clean interpreter with the network cut: local modules load; the Hub's 'accuracy' cannot."""
    script = textwrap.dedent(
        """
        import socket
        def no_network(*a, **k):
            raise OSError("network disabled in this test")
        socket.socket.connect = no_network
        socket.create_connection = no_network

        import evaluate
        from zoo.benchmarks.metrics import load_metric
        m = load_metric("seqeval_f1")
        assert isinstance(m, evaluate.EvaluationModule), type(m)
        print("f1", m.compute(predictions=[["B-X", "O"]], references=[["B-X", "I-X"]])["f1"])
        print("acc", load_metric("classification").compute(predictions=["1"], references=["1"])["accuracy"])
        print("ml", load_metric("multi_label").compute(predictions=[["a"], []], references=[["a"], []])["micro_f1"])
        try:
            evaluate.load("accuracy")
            print("hub accuracy loaded")
        except Exception as e:
            print("hub accuracy failed", type(e).__name__)
        """
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HOME": str(tmp_path / "hf"),
        "ZOO_HOME": str(tmp_path / "zoo"),
        "OMP_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "f1 0.0" in out.stdout  # B-X alone ≠ gold B-X I-X: strict exact match
    assert "acc 1.0" in out.stdout
    assert "ml 1.0" in out.stdout
    assert "hub accuracy failed" in out.stdout
    assert list((tmp_path / "modules").rglob("seqeval_f1.py"))  # evaluate imported its own copy from there
    assert (tmp_path / "zoo" / "cache" / "evaluate").is_dir()
