"""The SpotTune methods on timm backbones: training steps, #par, refusals, an engine job."""
import json

import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.benchmark.run import export_models
from decathlon.checkpoints import arch_record, save_backbone
from decathlon.engine import JobSpec, run_job
from decathlon.jobdir import DOMAIN_FILE
from decathlon.methods import get_method
from decathlon.methods.base import new_backbone

WIDTH = 0.125
ARCHS = {
    "vit": {"arch": "timm:vit_tiny_patch16_224", "patch_size": 8,
            "arch_kwargs": {"depth": 2, "embed_dim": 48, "num_heads": 2}},
    "resnet": {"arch": "timm:resnet18", "arch_kwargs": {"layers": [1, 1, 1, 1], "channels": [8, 16, 24, 32],
                                                        "stem_width": 8}},
}


def _hp(method, family, **changes):
    return hparams(method, "dtd", "cpu_demo", {"width": WIDTH, "lr": 0.05, **ARCHS[family], **changes})


def _method(method, family, **changes):
    hp = _hp(method, family, **changes)
    torch.manual_seed(0)
    state = new_backbone(hp, 7, None).state_dict()
    return get_method(method)(3, hp, state)


@pytest.mark.parametrize("family", list(ARCHS))
@pytest.mark.parametrize("name", ["spottune", "spottune_global", "random_policy"])
def test_updates_move_the_domain_never_the_frozen_backbone_then_evaluate(name, family):
    method = _method(name, family)
    spottune = method.net.spottune
    frozen = {k: v.clone() for k, v in spottune.backbone.state_dict().items()}
    own = {k: v.clone() for k, v in spottune.domains["target"].state_dict().items() if "tuned_blocks" in k}
    assert not any(p.requires_grad for p in spottune.backbone.parameters())
    torch.manual_seed(1)
    x, y = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 2, 0, 1, 2])
    for _ in range(3):
        assert torch.isfinite(method.update(x, y)["loss"])
    assert all(torch.equal(v, frozen[k]) for k, v in spottune.backbone.state_dict().items())
    moved = spottune.domains["target"].state_dict()
    assert any(not torch.equal(moved[k], v) for k, v in own.items() if k in moved)
    method.eval()
    for policy in method.eval_policies():
        method.use_eval_policy(policy)
        with torch.no_grad():
            assert method.predict(x).shape == (6, 3)
        usage = method.eval_stats(6)["policy_usage"]
        assert len(usage) == spottune.num_blocks and all(0.0 <= u <= 1.0 for u in usage)
    assert set(method.exports()) == {DOMAIN_FILE}


@pytest.mark.parametrize("family", list(ARCHS))
def test_stored_parameters_are_the_domains_own_tensors_blocks_policy_and_classifier(family):
    method = _method("spottune", family)
    branch = method.net.spottune.domains["target"]
    stored = method.stored_parameters()
    parts = [branch.own, branch.tuned_blocks, branch.policy, branch.classifier]
    assert stored["total"] == sum(p.numel() for part in parts for p in part.parameters())
    blocks = sum(p.numel() for p in branch.tuned_blocks.parameters())
    assert stored["classifier"] == 3 * (branch.classifier.in_features + 1)
    assert _method("random_policy", family).stored_parameters()["total"] < stored["total"]
    assert blocks < stored["total"] - stored["classifier"]


def test_what_exists_for_the_resnet26_spottune_only_is_refused_on_a_timm_backbone():
    with pytest.raises(ValueError, match="compiled tail exists for the ResNet-26 SpotTune only"):
        _method("spottune", "vit", tail="compiled")
    with pytest.raises(ValueError, match="policy must be one of .*'shared_trunk'"):
        _method("spottune", "vit", policy="shared_trunk")
    with pytest.raises(ValueError, match="timm:mobilenetv3_small_050.*supported: ViT/DeiT/EVA"):
        _method("spottune", "vit", arch="timm:mobilenetv3_small_050", patch_size=None, arch_kwargs={})
    with pytest.raises(ValueError, match="'spottune_joint' is defined on the benchmark's ResNet-26"):
        get_method("spottune_joint")({"dtd": 3}, _hp("spottune_joint", "vit"), {})


def test_an_engine_job_on_a_tiny_vit_trains_evaluates_and_exports_its_domain_only(
        tiny_decathlon, tiny_hparams, tmp_path):
    hp = hparams("spottune", "dtd", "cpu_demo", {**tiny_hparams, **ARCHS["vit"], "epochs": 1})
    torch.manual_seed(0)
    save_backbone(new_backbone(hp, 4, None), arch_record(hp), tmp_path / "backbone.pt")
    spec = JobSpec("spottune", "dtd", str(tiny_decathlon), str(tmp_path / "job"), hp,
                   backbone=str(tmp_path / "backbone.pt"), device="cpu", progress=False)
    run_job(spec)
    final = json.loads((tmp_path / "job" / "final.json").read_text())
    assert [e["eval_policy"] for e in final["evaluations"]] == ["argmax", "sample"]
    for evaluation in final["evaluations"]:
        test = evaluation["splits"]["test"]
        assert 0 <= test["accuracy"] <= 1 and len(test["stats"]["policy_usage"]) == 2
    assert final["stored_parameters"]["total"] > final["reference_parameters"]   # two tuned blocks + the rest
    assert final["cost"]["flops"]["dtd"]["eval_policy"] == "argmax"
    assert (tmp_path / "job" / DOMAIN_FILE).is_file()
    assert export_models([spec], tmp_path / "models") == []   # no multi-domain file for timm jobs
