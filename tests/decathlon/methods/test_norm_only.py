"""bn_adapt is norm-only over any backbone: the normalisation layers' affine parameters and the
classifier train, nothing else moves; on ResNet-26 exactly the parameters it always trained."""
import pytest
import torch
from torch import nn

from decathlon.benchmark import hparams
from decathlon.methods import get_method
from decathlon.methods.base import new_backbone
from decathlon.models import resnet26

TINY_VIT = {"arch": "timm:vit_tiny_patch16_224", "patch_size": 8,
            "arch_kwargs": {"depth": 2, "embed_dim": 48, "num_heads": 2}}


def _method(name, overrides, state):
    return get_method(name)(3, hparams(name, "dtd", "cpu_demo", {"lr": 0.05, **overrides}), state)


def test_on_resnet26_it_trains_what_it_always_trained():
    """Every parameter but the convolutions' (its rule before it covered other backbones)."""
    net = resnet26(7, width=0.125)
    method = _method("bn_adapt", {"width": 0.125}, net.state_dict())
    convs = {f"{name}.weight" for name, module in method.net.named_modules() if isinstance(module, nn.Conv2d)}
    trained = [name for name, p in method.net.named_parameters() if p.requires_grad]
    assert trained == [name for name, _ in method.net.named_parameters() if name not in convs]


@pytest.mark.parametrize("overrides", [TINY_VIT, {"arch": "timm:resnet18"}], ids=["vit", "resnet18"])
def test_on_timm_backbones_only_norms_and_classifier_train_and_the_rest_stays(overrides):
    torch.manual_seed(0)
    hp = hparams("bn_adapt", "dtd", "cpu_demo", {"lr": 0.05, **overrides})
    method = get_method("bn_adapt")(3, hp, new_backbone(hp, 5, None).state_dict())
    trained = {name for name, p in method.net.named_parameters() if p.requires_grad}
    owners = {f"{module_name}.{name}": type(module).__name__ for module_name, module in method.net.named_modules()
              for name, _ in module.named_parameters(recurse=False)}
    norms = {name for name, kind in owners.items() if "Norm" in kind}
    assert trained == norms | {"classifier.weight", "classifier.bias"} and len(norms) > 4
    frozen = {name: p.detach().clone() for name, p in method.net.named_parameters() if not p.requires_grad}
    before = {name: p.detach().clone() for name, p in method.net.named_parameters() if p.requires_grad}
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])
    for _ in range(2):
        method.update(x, y)
    params = dict(method.net.named_parameters())
    assert all(torch.equal(params[name], value) for name, value in frozen.items())
    assert any(not torch.equal(params[name], value) for name, value in before.items() if "classifier" not in name)
    assert method.stored_parameters()["total"] == sum(params[name].numel() for name in trained)


def test_feature_extractor_keeps_a_timm_cnns_bn_statistics():
    hp = hparams("feature_extractor", "dtd", "cpu_demo", {"arch": "timm:resnet18"})
    method = get_method("feature_extractor")(3, hp, new_backbone(hp, 5, None).state_dict())
    before = {k: v.clone() for k, v in method.net.state_dict().items() if "running_mean" in k}
    method.update(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0]))
    after = method.net.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
