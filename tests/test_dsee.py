"""DSEE invariants: exact at init, N non-zeros, S2 scaled like LoRA, exact pruning ratios, head slicing,
the BERT-base parameter count, save/load and merged export."""

from __future__ import annotations

import copy

import pytest
import torch
import transformers
from tiny_models import IDS, out, tiny_bert, tiny_llama

from zoo.adapters import dsee, head_pruning
from zoo.adapters.grebsmo import sparse_support
from zoo.errors import UserError

FAST = {"grebsmo_iters": 3}  # GreBsmo's 100 outer iterations are for 768x768; 32x32 needs few


@torch.no_grad()
def perturb(model: torch.nn.Module, seed: int = 5) -> None:
    """Stand-in for stage-1 training: random values in every trainable tensor."""
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.requires_grad:
            p.copy_(0.05 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama])
@pytest.mark.parametrize("init", ["grebsmo", "magnitude", "random"])
def test_init_is_exactly_the_base_model_with_num_sparse_entries_per_matrix(make, init):
    model = dsee.apply(make(), dsee.DSEEConfig(r=4, alpha=8, num_sparse=10, sparse_init=init, **FAST))
    assert torch.equal(out(model), out(make()))
    layers = dsee.dsee_layers(model)
    assert len(layers) == 4 and all(n.endswith(("query", "value", "q_proj", "v_proj")) for n in layers)
    perturb(model)
    for layer in layers.values():
        sparse_only = layer.delta_weight() - layer.scaling * (layer.lora_B @ layer.lora_A)
        assert int((sparse_only.abs() > 1e-6).sum()) == 10


def test_sparse_part_is_scaled_by_alpha_over_r_like_the_low_rank_part():
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, alpha=12, num_sparse=10, sparse_init="random"))
    perturb(model)
    layer = model.bert.encoder.layer[0].attention.self.query
    s2 = torch.zeros(layer.out_features, layer.in_features)
    s2[tuple(layer.sparse_index)] = layer.sparse_values.detach()
    x = torch.randn(3, layer.in_features)
    expected = x @ (layer.weight + 3.0 * (layer.lora_B @ layer.lora_A + s2)).T + layer.bias
    torch.testing.assert_close(layer(x), expected)


def test_only_lora_s2_and_task_head_train_and_the_pooler_stays_frozen():
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=6, sparse_init="random"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {n.rsplit(".", 1)[-1] for n in trainable if not n.startswith("classifier.")} == {
        "lora_A",
        "lora_B",
        "sparse_values",
    }
    assert {"classifier.weight", "classifier.bias"} <= trainable
    assert not any("pooler" in n for n in trainable)
    llama = dsee.apply(tiny_llama(), dsee.DSEEConfig(r=4, num_sparse=6, sparse_init="random"))
    assert "score.weight" in {n for n, p in llama.named_parameters() if p.requires_grad}


def test_bert_base_shape_has_exactly_591360_dsee_parameters():
    cfg = transformers.BertConfig(
        vocab_size=8,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        num_labels=2,
    )
    model = dsee.apply(
        transformers.BertForSequenceClassification(cfg),
        dsee.DSEEConfig(r=16, alpha=32, num_sparse=64, sparse_init="random"),
    )
    assert dsee.num_dsee_parameters(model) == 591_360
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 591_360 + 768 * 2 + 2  # + the classifier


def test_grebsmo_finds_planted_sparse_entries_that_top_magnitude_misses():
    gen = torch.Generator().manual_seed(0)
    low_rank = 0.05 * torch.randn(40, 2, generator=gen) @ torch.randn(2, 30, generator=gen)
    planted = torch.randperm(1200, generator=gen)[:8].sort().values
    w = low_rank.flatten().clone()
    w[planted] += 0.08  # above the 0.01 threshold, below the largest low-rank entries
    w = w.view(40, 30)
    # Two outer iterations with rank step 1 reach the true rank 2; the residual is then the planted part.
    found = sparse_support(w, 8, "grebsmo", iters=2, rank_step=1)
    assert torch.equal(found[0] * 30 + found[1], planted)
    top = sparse_support(w, 8, "magnitude")
    assert not torch.equal(top[0] * 30 + top[1], planted)
    assert torch.equal(sparse_support(w, 8, "random", seed=3), sparse_support(w, 8, "random", seed=3))


def test_prune_hits_each_groups_ratio_globally_by_w_and_by_update():
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=10, sparse_init="random"))
    perturb(model)
    before = {n: m.weight.detach().clone() for n, m in model.named_modules() if hasattr(m, "prune_mask")}
    dsee.prune(model, ratio=0.3, adapted_ratio=0.5)
    groups = {
        "backbone": (dsee._backbone_linears(model), 0.3, lambda m: before_w(m).abs()),
        "adapted": (dsee.dsee_layers(model), 0.5, lambda m: m.delta_weight().abs()),
    }
    names = {id(m): n for n, m in model.named_modules()}

    def before_w(m):
        return before[names[id(m)]] if names[id(m)] in before else m.weight.detach()

    for group, (mods, ratio, score) in groups.items():
        total = sum(m.weight.numel() for m in mods.values())
        pruned = sum(int((~m.prune_mask).sum()) for m in mods.values())
        assert abs(pruned - ratio * total) <= 1, group
        assert dsee.sparsity(model)[group] == pytest.approx(ratio, abs=1 / total)
        # Global: every pruned score is <= every kept score, across layers.
        cut = max(score(m)[~m.prune_mask].max() for m in mods.values())
        keep = min(score(m)[m.prune_mask].min() for m in mods.values())
        assert cut <= keep
        assert all(torch.all(m.weight[~m.prune_mask] == 0) for m in mods.values())


def test_retraining_after_prune_keeps_the_masked_weights_at_zero():
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=10, sparse_init="random"))
    perturb(model)
    dsee.prune(model, ratio=0.2)
    zeros = {n: (p == 0).clone() for n, p in model.named_parameters() if not p.requires_grad and p.dim() == 2}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = model(input_ids=IDS, labels=torch.tensor([0, 2])).loss
    loss.backward()
    opt.step()
    params = dict(model.named_parameters())
    assert all(torch.all(params[n][z] == 0) for n, z in zeros.items())
    assert sum(int(z.sum()) for z in zeros.values()) > 0


def _zero_heads_reference(model, heads):
    """The unpruned model minus those heads' contributions: their slice of the o-projection input is 0."""
    ref = copy.deepcopy(model)
    for layer, drop in heads.items():
        a = head_pruning.attention(head_pruning.blocks(ref)[layer])

        def hook(mod, args, drop=drop, d=a.head_dim):
            x = args[0].clone()
            for h in drop:
                x[..., h * d : (h + 1) * d] = 0
            return (x,)

        a.o.register_forward_pre_hook(hook)
    return ref


@pytest.mark.parametrize(
    "make, targets, heads",
    [
        (tiny_bert, ["query", "value"], {0: [1, 3], 1: [0]}),
        (tiny_llama, ["q_proj", "v_proj", "o_proj"], {0: [2], 1: [0, 1, 3]}),
        (lambda: tiny_llama(kv_heads=2), ["query", "value"], {0: [2, 3], 1: [0, 1]}),
    ],
)
def test_head_pruning_equals_the_model_with_those_heads_zeroed(make, targets, heads):
    model = dsee.apply(
        make(), dsee.DSEEConfig(r=4, num_sparse=12, target_modules=targets, sparse_init="random")
    )
    perturb(model)
    ref = _zero_heads_reference(model, heads)
    head_pruning.prune_heads(model, heads)
    assert head_pruning.pruned_heads(model) == {k: sorted(v) for k, v in heads.items()}
    torch.testing.assert_close(out(model), out(ref))
    assert not torch.allclose(out(model), out(_zero_heads_reference(ref, {0: [0]})))


def test_structured_prune_removes_the_heads_with_the_least_update():
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=8, sparse_init="random"))
    perturb(model)
    with torch.no_grad():
        for block in model.bert.encoder.layer:  # head 2 gets no update, head 0 a tiny one
            for proj in (block.attention.self.query, block.attention.self.value):
                proj.lora_B[16:24] = 0
                proj.lora_B[0:8] *= 1e-3
                rows = proj.sparse_index[0]
                proj.sparse_values[(rows < 8) | ((rows >= 16) & (rows < 24))] = 0
    dsee.prune(model, ratio=0.0, heads_per_layer=2)
    assert head_pruning.pruned_heads(model) == {0: [0, 2], 1: [0, 2]}
    assert model.bert.encoder.layer[0].attention.self.query.weight.shape == (16, 32)
    assert dsee.sparsity(model)["backbone"] == 0.0
    gqa = dsee.apply(tiny_llama(kv_heads=2), dsee.DSEEConfig(r=4, num_sparse=8, sparse_init="random"))
    with pytest.raises(UserError, match="multiple of 2"):
        dsee.prune(gqa, ratio=0.0, heads_per_layer=1)


def test_save_load_round_trip_after_pruning_gives_identical_outputs(tmp_path):
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=10, **FAST))
    perturb(model)
    dsee.prune(model, ratio=0.25, heads_per_layer=1)
    perturb(model, seed=6)  # retrained after pruning
    dsee.save_adapter(model, tmp_path)
    reloaded = dsee.load_adapter(tiny_bert(), tmp_path)
    assert torch.equal(out(reloaded), out(model))
    assert dsee.sparsity(reloaded) == dsee.sparsity(model)
    assert not torch.allclose(out(reloaded), out(tiny_bert()))
    with pytest.raises(UserError, match="no DSEE adapter"):
        dsee.load_adapter(tiny_bert(), tmp_path / "missing")


@pytest.mark.parametrize(
    "make, cls",
    [
        (tiny_bert, transformers.BertForSequenceClassification),
        (tiny_llama, transformers.LlamaForSequenceClassification),
    ],
)
def test_export_is_a_plain_checkpoint_that_keeps_its_zeros(tmp_path, make, cls):
    model = dsee.apply(make(), dsee.DSEEConfig(r=4, num_sparse=10, sparse_init="random"))
    perturb(model)
    dsee.prune(model, ratio=0.3, heads_per_layer=1, adapted_ratio=0.0)
    dsee.export_merged(model, tmp_path)
    loaded = cls.from_pretrained(tmp_path).eval()
    # No update dropped (adapted_ratio=0): the plain checkpoint computes what the DSEE model does.
    torch.testing.assert_close(out(loaded), out(model))
    masked = sum(int((~m.prune_mask).sum()) for m in dsee._backbone_linears(model).values())
    zeros = sum(
        int((m.weight == 0).sum())
        for n, m in loaded.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith(loaded.base_model_prefix)
    )
    # One removed head per layer comes back as zeros: 8 rows of q, k and v and 8 columns of o (32 wide).
    assert zeros == masked + 2 * 4 * 8 * 32


def test_export_is_exact_where_adapted_weights_were_pruned(tmp_path):
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=10, sparse_init="random"))
    perturb(model)
    dsee.prune(model, ratio=0.0, adapted_ratio=0.4)
    dsee.export_merged(model, tmp_path)
    loaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path).eval()
    # The published checkpoint is the scored model: (mask ⊙ W) + ΔW, the update kept at pruned positions.
    torch.testing.assert_close(out(loaded), out(model))
    q = model.bert.encoder.layer[1].attention.self.query
    w = loaded.bert.encoder.layer[1].attention.self.query.weight
    assert int((~q.prune_mask).sum()) > 0
    torch.testing.assert_close(w, q.weight + q.delta_weight())
    torch.testing.assert_close(w[~q.prune_mask], q.delta_weight()[~q.prune_mask])


def test_inference_flops_count_what_pruning_removes():
    model = dsee.apply(tiny_bert(), dsee.DSEEConfig(r=4, num_sparse=10, sparse_init="random"))
    perturb(model)
    dense = dsee.inference_flops(model, seq_len=16)
    assert dense["removed"] == 0.0 and dense["linear_nonzero_macs"] == dense["linear_dense_macs"]
    dsee.prune(model, ratio=0.5, adapted_ratio=0.0)
    pruned = dsee.inference_flops(model, seq_len=16)
    backbone = sum(m.weight.numel() for m in dsee._backbone_linears(model).values())
    assert pruned["linear_dense_macs"] == dense["linear_dense_macs"]
    assert pruned["linear_nonzero_macs"] == dense["linear_dense_macs"] - 16 * round(0.5 * backbone)
    assert pruned["removed"] > 0.3
    dsee.prune(model, ratio=0.0, heads_per_layer=2)
    heads = dsee.inference_flops(model, seq_len=16)
    assert heads["attention_kept_macs"] == heads["attention_dense_macs"] / 2


def test_targets_translate_between_families_and_unknown_ones_are_user_errors():
    assert dsee.resolve_targets(tiny_llama(), ["query", "value"])[:2] == [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
    ]
    assert dsee.resolve_targets(tiny_bert(), ["output.dense"]) == [
        "bert.encoder.layer.0.output.dense",
        "bert.encoder.layer.1.output.dense",
    ]
    with pytest.raises(UserError, match="match no linear layer"):
        dsee.apply(tiny_bert(), dsee.DSEEConfig(target_modules=["qkv"]))
    with pytest.raises(UserError, match="prune_ratio"):
        dsee.DSEEConfig(prune_ratio=1.5)
