"""EMoE invariants: exact dense equivalence at k = N, balanced experts, no added parameters, block masking."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers
from tiny_models import out, tiny_bert
from tiny_models import tiny_llama as _tiny_llama

from zoo.adapters import emoe
from zoo.errors import UserError


def tiny_llama(seed: int = 0) -> transformers.PreTrainedModel:
    return _tiny_llama(seed, causal_lm=True)


@pytest.mark.parametrize("make", [tiny_bert, tiny_llama])
def test_top_k_equal_to_num_experts_is_exactly_dense(make):
    dense = out(make())
    model = emoe.apply(make(), emoe.EMoEConfig(num_experts=8, top_k=8, layers=[0, 1]))
    assert len(emoe.gates(model)) == 2
    assert torch.equal(out(model), dense)
    sparse = emoe.apply(make(), emoe.EMoEConfig(num_experts=8, top_k=2, layers=[0, 1]))
    assert not torch.allclose(out(sparse), dense)


@pytest.mark.parametrize("make, d_ff", [(tiny_bert, 64), (tiny_llama, 48)])
def test_every_expert_holds_d_ff_over_n_neurons_and_no_parameter_is_added(make, d_ff):
    base = make()
    before = {n: p.clone() for n, p in base.state_dict().items()}
    n_params = sum(p.numel() for p in base.parameters())
    model = emoe.apply(base, emoe.EMoEConfig(num_experts=8, top_k=3))
    ((layer, gate),) = emoe.gates(model).items()
    assert layer == 0  # default: one late layer, the second-to-last of 2
    assert torch.bincount(gate.cluster_ids, minlength=8).tolist() == [d_ff // 8] * 8
    assert sum(p.numel() for p in model.parameters()) == n_params
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[n], t) for n, t in before.items())


def test_bert_block_mask_matches_a_naive_per_token_reference():
    model = emoe.apply(tiny_bert(), emoe.EMoEConfig(num_experts=8, top_k=3, layers=[1]))
    layer = model.bert.encoder.layer[1]
    ids = emoe.gates(model)[1].cluster_ids
    seen = {}
    layer.intermediate.dense.register_forward_hook(lambda m, a, o: seen.update(x=a[0]))
    layer.output.dense.register_forward_hook(lambda m, a, o: seen.update(y=o))
    out(model)
    linear = torch.nn.functional.linear  # not the modules: their EMoE hooks would fire
    w_in, w_out = layer.intermediate.dense, layer.output.dense
    with torch.no_grad():
        h = linear(seen["x"], w_in.weight, w_in.bias)
        act = layer.intermediate.intermediate_act_fn(h)
        ref = torch.empty_like(seen["y"])
        for b in range(h.shape[0]):
            for t in range(h.shape[1]):
                scores = torch.stack([h[b, t, ids == e].mean() for e in range(8)])
                keep = torch.isin(ids, scores.topk(3).indices)
                ref[b, t] = linear(act[b, t] * keep, w_out.weight, w_out.bias)
    torch.testing.assert_close(seen["y"], ref)


def test_dense_switch_and_remove_restore_the_dense_model():
    dense = out(tiny_bert())
    model = emoe.apply(tiny_bert(), emoe.EMoEConfig(num_experts=4, top_k=1))
    moe = out(model)
    assert not torch.allclose(moe, dense)
    with emoe.dense(model):
        assert torch.equal(out(model), dense)
    assert torch.equal(out(model), moe)
    emoe.after_training(model, emoe.EMoEConfig(num_experts=4, top_k=1, eval_dense=True))
    assert torch.equal(out(model), dense)
    emoe.remove(emoe.set_dense(model, False))
    assert emoe.gates(model) == {} and torch.equal(out(model), dense)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = emoe.apply(tiny_llama(), emoe.EMoEConfig(num_experts=6, top_k=2, layers=[-1, 0]))
    emoe.save(model, tmp_path)
    reloaded = emoe.load(tiny_llama(), tmp_path)
    assert sorted(emoe.gates(reloaded)) == [0, 1]
    assert torch.equal(out(reloaded), out(model))
    assert not torch.allclose(out(reloaded), out(tiny_llama()))


def test_balanced_kmeans_recovers_separated_equal_blobs():
    gen = torch.Generator().manual_seed(0)
    centers = torch.eye(4, 16) * 10
    truth = torch.arange(4).repeat_interleave(8)[torch.randperm(32, generator=gen)]
    pts = centers[truth] + 0.1 * torch.randn(32, 16, generator=gen)
    labels = emoe.balanced_kmeans(pts, 4, seed=3)
    assert torch.bincount(labels).tolist() == [8, 8, 8, 8]
    # Same partition up to renaming the clusters.
    assert all(labels[truth == c].unique().numel() == 1 for c in range(4))


def test_bad_configs_are_user_errors():
    with pytest.raises(UserError, match="top_k"):
        emoe.EMoEConfig(num_experts=4, top_k=5)
    with pytest.raises(UserError, match="equal experts"):
        emoe.apply(tiny_bert(), emoe.EMoEConfig(num_experts=7, top_k=2))
    with pytest.raises(UserError, match="layer 5"):
        emoe.apply(tiny_bert(), emoe.EMoEConfig(num_experts=4, top_k=2, layers=[5]))
