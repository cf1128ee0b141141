"""BitFit, LoRA, VPT and AdaptFormer as methods: what trains, what stays frozen, #par, exports,
the backbones each is defined on, and one job of each through the engine."""
import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.checkpoints import arch_record, save_backbone
from decathlon.engine import JobSpec, run_job
from decathlon.jobdir import PEFT_DOMAIN_FILE
from decathlon.methods import get_method
from decathlon.methods.base import new_backbone

TINY_VIT = {"arch": "timm:vit_tiny_patch16_224", "patch_size": 8,
            "arch_kwargs": {"depth": 2, "embed_dim": 48, "num_heads": 2}}
RESNET26 = {"arch": "resnet26", "width": 0.25}
RESNET18 = {"arch": "timm:resnet18"}
CASES = [("bitfit", RESNET26), ("bitfit", RESNET18), ("bitfit", TINY_VIT), ("lora", RESNET26), ("lora", RESNET18),
         ("lora", TINY_VIT), ("vpt", TINY_VIT), ("adaptformer", TINY_VIT)]


def _method(name, backbone, **overrides):
    hp = hparams(name, "aircraft", "cpu_demo", {"lr": 0.05, **backbone, **overrides})
    torch.manual_seed(0)
    state = new_backbone(hp, 7, None).state_dict()
    return get_method(name)(3, hp, state)


def _expected_trained(name, key):
    """The parameters each method trains, by network key (the classifier always)."""
    return "classifier." in key or {"bitfit": key.endswith("bias"), "lora": ".lora_" in key,
                                    "vpt": key == "prompts", "adaptformer": ".adapter." in key}[name]


@pytest.mark.parametrize("name, backbone", CASES, ids=[f"{n}-{b['arch']}" for n, b in CASES])
def test_only_the_methods_own_tensors_train_and_par_counts_them(name, backbone):
    method = _method(name, backbone)
    trained = {k for k, p in method.net.named_parameters() if p.requires_grad}
    assert trained == {k for k, _ in method.net.named_parameters() if _expected_trained(name, k)}
    frozen = {k: v.clone() for k, v in method.net.state_dict().items() if k not in trained}   # BN statistics too
    before = {k: p.detach().clone() for k, p in method.net.named_parameters() if k in trained}
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        assert torch.isfinite(method.update(x, y)["loss"])
    state = method.net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())
    moved = {k for k, p in method.net.named_parameters() if k in trained and not torch.equal(p, before[k])}
    assert "classifier.weight" in {k.removeprefix("net.") for k in moved} and len(moved) > 2
    stored = method.stored_parameters()
    assert stored["total"] == sum(p.numel() for k, p in method.net.named_parameters() if k in trained)
    assert stored["classifier"] == 3 * method.net.classifier.in_features + 3


def test_bitfit_on_the_resnet26_trains_the_bn_shifts_only():
    method = _method("bitfit", RESNET26)
    trained = [k for k, p in method.net.named_parameters() if p.requires_grad and "classifier" not in k]
    assert trained and all(k.endswith("bn.bias") for k in trained)


def test_lora_with_train_norms_trains_and_ships_the_norms():
    method = _method("lora", RESNET26, train_norms=True)
    norms = [k for k, p in method.net.named_parameters() if p.requires_grad and "bn" in k]
    assert norms
    method.update(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]))
    state = method.exports()[PEFT_DOMAIN_FILE]["state"]
    assert any(k.endswith("running_mean") for k in state) and set(norms) <= set(state)


@pytest.mark.parametrize("name", ["vpt", "adaptformer"])
@pytest.mark.parametrize("backbone", [RESNET26, RESNET18], ids=["resnet26", "resnet18"])
def test_the_vit_methods_refuse_a_cnn_by_name(name, backbone):
    with pytest.raises(ValueError, match=f"method '{name}' is defined on ViT backbones"):
        _method(name, backbone)


def _timm_backbone_file(hp, path):
    """A pretrained backbone of the job's arch, in the backbone file format with its arch record."""
    torch.manual_seed(0)
    save_backbone(new_backbone(hp, 12, None), arch_record(hp), path)
    return path


@pytest.mark.parametrize("name, backbone", [("bitfit", None), ("lora", TINY_VIT), ("vpt", TINY_VIT),
                                            ("adaptformer", TINY_VIT)], ids=["bitfit", "lora", "vpt", "adaptformer"])
def test_a_job_trains_through_the_engine_and_ships_what_it_trained(name, backbone, tiny_decathlon, tiny_backbone,
                                                                   tiny_hparams, tmp_path):
    hp = hparams(name, "dtd", "cpu_demo", {**tiny_hparams, "epochs": 1, **(backbone or {})})
    file = _timm_backbone_file(hp, tmp_path / "backbone.pt") if backbone else tiny_backbone
    final = run_job(JobSpec(method=name, domain="dtd", data=str(tiny_decathlon), out=str(tmp_path / "job"),
                            hparams=hp, backbone=str(file), device="cpu", progress=False, extra={"preset": "cpu_demo"}))
    assert final["spec"]["hparams"]["arch"] == hp["arch"]
    exported = torch.load(tmp_path / "job" / PEFT_DOMAIN_FILE, weights_only=True)
    assert exported["method"] == name
    assert sum(t.numel() for k, t in exported["state"].items()) == final["stored_parameters"]["total"]
    assert final["stored_parameters"]["total"] < final["reference_parameters"]


def test_the_hyperparameters_are_registered_typed_and_sweepable():
    from decathlon.benchmark import search_space

    lora = hparams("lora", "dtd")
    assert (lora["lora_rank"], lora["lora_alpha"], lora["lora_targets"][:2]) == (8, 8.0, ["q", "v"])
    assert hparams("vpt", "dtd")["vpt_mode"] == "deep" and hparams("adaptformer", "dtd")["adapter_dim"] == 64
    with pytest.raises(ValueError, match="'lora_targets' is \"q\"; expected a list of str"):
        hparams("lora", "dtd", overrides={"lora_targets": "q"})
    assert all(set(search_space(name)) == {"lr", "weight_decay"} for name in ("bitfit", "lora", "vpt", "adaptformer"))
    with pytest.raises(ValueError, match="vpt_mode 'middle': expected one of shallow, deep"):
        _method("vpt", TINY_VIT, vpt_mode="middle")
