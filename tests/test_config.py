"""Config: defaults < domain defaults < YAML < key=value; unknown keys and bad values are user errors."""

from pathlib import Path

import pytest

from zoo.config import FinetuneConfig, PretrainConfig, build_config, save_yaml
from zoo.errors import UserError


def test_precedence_defaults_domain_yaml_overrides(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.002\n  max_steps: 50\ndata:\n  seq_len: 64\n")
    cfg = build_config(
        PretrainConfig,
        {"train.max_steps": 10, "train.batch_size": 8},
        f,
        ["train.max_steps=7", "data.corpus=a.txt,b.txt"],
    )
    assert cfg.train.lr == 0.002  # from YAML
    assert cfg.train.max_steps == 7  # override beats YAML beats domain default
    assert cfg.train.batch_size == 8  # domain default beats dataclass default
    assert cfg.data.seq_len == 64
    assert cfg.data.corpus == ["a.txt", "b.txt"]


def test_list_overrides_parse_their_items() -> None:
    from dataclasses import dataclass, field

    @dataclass
    class C:
        layers: list[int] = field(default_factory=list)

    assert build_config(C, overrides=["layers=10,11"]).layers == [10, 11]
    assert build_config(C, overrides=["layers=[3]"]).layers == [3]
    with pytest.raises(UserError, match="integer"):
        build_config(C, overrides=["layers=a,b"])


def test_scientific_notation_override_is_a_number() -> None:
    cfg = build_config(PretrainConfig, overrides=["train.lr=3e-4"])
    assert cfg.train.lr == pytest.approx(3e-4)


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(UserError) as err:
        build_config(PretrainConfig, overrides=["train.lrr=1"])
    msg = str(err.value)
    assert "train.lrr" in msg and "did you mean 'train.lr'" in msg and "train.max_steps" in msg


def test_bad_values_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="integer"):
        build_config(PretrainConfig, overrides=["train.max_steps=ten"])
    with pytest.raises(UserError, match="one of"):
        build_config(PretrainConfig, overrides=["train.schedule=exponential"])
    with pytest.raises(UserError, match="key=value"):
        build_config(FinetuneConfig, overrides=["epochs"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1\n")
    with pytest.raises(UserError, match="not valid YAML"):
        build_config(PretrainConfig, config_file=bad)
    with pytest.raises(UserError, match="does not exist"):
        build_config(PretrainConfig, config_file=tmp_path / "missing.yaml")


def test_saved_config_loads_back_identically(tmp_path: Path) -> None:
    cfg = build_config(PretrainConfig, overrides=["train.lr=1e-3", "model.hidden_size=64", "data.corpus=x"])
    save_yaml(cfg, tmp_path / "config.yaml")
    assert build_config(PretrainConfig, config_file=tmp_path / "config.yaml") == cfg


def test_open_sections_take_any_key_and_their_plugin_validates_it() -> None:
    from zoo.config import valid_keys

    cfg = build_config(PretrainConfig, overrides=["objective.mask_prob=0.3", "corpus.window=4096"])
    assert cfg.objective == {"mask_prob": 0.3} and cfg.corpus == {"window": 4096}
    assert "objective.*" in valid_keys(PretrainConfig) and "method.*" in valid_keys(FinetuneConfig)
    ft = build_config(
        FinetuneConfig, overrides=["method.name=lora", "method.r=8", "train.lr=1e-3", "select=dev"]
    )
    assert ft.method == {"name": "lora", "r": 8} and ft.train.lr == 1e-3 and ft.select == "dev"
    with pytest.raises(UserError, match="did you mean 'train.epochs'"):
        build_config(FinetuneConfig, overrides=["train.epoch=3"])


def test_method_options_are_typed_by_the_method_and_resolved_in_full() -> None:
    from zoo.finetune import resolve_method

    method, cfg = resolve_method(build_config(FinetuneConfig, overrides=["method.name=lora", "method.r=8"]))
    assert method.name == "lora" and cfg.r == 8 and cfg.alpha == 32.0 and isinstance(cfg.alpha, float)
    with pytest.raises(UserError, match=r"unknown option 'method.rank' .*'lora' \(choose from: alpha, .*r,"):
        resolve_method(build_config(FinetuneConfig, overrides=["method.name=lora", "method.rank=8"]))
    with pytest.raises(UserError, match="did you mean 'alpha'"):
        resolve_method(build_config(FinetuneConfig, overrides=["method.name=lora", "method.alhpa=8"]))
    with pytest.raises(UserError, match="it has no options"):
        resolve_method(build_config(FinetuneConfig, overrides=["method.r=8"]))
    with pytest.raises(UserError, match="did you mean 'dsee'"):
        resolve_method(build_config(FinetuneConfig, overrides=["method.name=dse"]))


def test_objective_and_corpus_options_reach_the_run() -> None:
    from zoo.objectives import build_objective
    from zoo.pretrain import build_domain_objective, obtain_tokenizer, prepare_data
    from zoo.registry import get_domain

    genomic = get_domain("genomic")
    small = build_config(
        PretrainConfig, genomic.pretrain_defaults, overrides=["corpus.window=256", "data.eval_fraction=0"]
    )
    large = build_config(PretrainConfig, genomic.pretrain_defaults, overrides=["data.eval_fraction=0"])
    tok = obtain_tokenizer(genomic, large, None)
    # Windows of 256 bases instead of the domain's 1536: about six times as many documents.
    assert prepare_data(genomic, small, tok).documents > 5 * prepare_data(genomic, large, tok).documents
    bio = get_domain("biomedical")
    cfg = build_config(PretrainConfig, bio.pretrain_defaults, overrides=["objective.mask_prob=0.3"])
    btok = obtain_tokenizer(bio, cfg, None)
    assert build_domain_objective(bio, cfg, btok).mask_prob == 0.3
    with pytest.raises(UserError, match="did you mean 'mask_prob'"):
        build_objective("mlm", {"mask_prb": 0.3}, btok)
