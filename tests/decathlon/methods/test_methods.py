"""Every registered method: three updates then a prediction on a tiny config (DomainBed style)."""
import pytest
import torch

from decathlon.benchmark import hparams, joint_hparams
from decathlon.methods import METHODS, get_method
from decathlon.models import resnet26

WIDTH = 0.125


@pytest.fixture(scope="module")
def backbone_state():
    torch.manual_seed(0)
    return resnet26(7, width=WIDTH).state_dict()


JOINT_CLASSES = {"aircraft": 3, "dtd": 4}
SINGLE = [name for name, cls in METHODS.items() if not cls.multi_domain and cls.backbones != "vit"]
# On the ResNet-26 here: every method but the ViT-only ones (tests/decathlon/methods/test_peft.py).
ON_RESNET26 = [name for name, cls in METHODS.items() if cls.backbones != "vit"]


def _method(name, backbone_state, num_classes=3):
    hp = hparams(name, "aircraft", "cpu_demo", {"width": WIDTH, "lr": 0.01})
    cls = get_method(name)
    if cls.multi_domain:
        hp = joint_hparams(name, JOINT_CLASSES, "cpu_demo", {"width": WIDTH, "lr": 0.01})
        num_classes = JOINT_CLASSES
    # A distilling method's teacher: a fine-tuned ResNet-26 of the domain's classes.
    teacher = {"teacher_state": resnet26(num_classes, width=WIDTH).state_dict()} if getattr(
        cls, "needs_teacher", False) else {}
    return cls(num_classes, hp, backbone_state if cls.uses_backbone else None, **teacher)


@pytest.mark.parametrize("name", ON_RESNET26)
def test_three_updates_then_predict(name, backbone_state):
    torch.manual_seed(1)
    method = _method(name, backbone_state)
    x, y = torch.randn(6, 3, 24, 24), torch.tensor([0, 1, 2, 0, 1, 2])
    batch = ("aircraft", x, y, "dtd", x.flip(0), y + 1) if method.multi_domain else (x, y)
    trainable_before = {n: p.detach().clone() for n, p in method.net.named_parameters() if p.requires_grad}
    frozen_before = {n: p.detach().clone() for n, p in method.net.named_parameters() if not p.requires_grad}
    for _ in range(3):
        logs = method.update(*batch)
        assert torch.isfinite(logs["loss"])
    changed = [n for n, p in method.net.named_parameters() if p.requires_grad
               and not torch.equal(p, trainable_before[n])]
    assert changed, "no trainable parameter moved"
    assert all(torch.equal(p, frozen_before[n]) for n, p in method.net.named_parameters() if not p.requires_grad)
    method.eval()
    for domain, classes in (JOINT_CLASSES.items() if method.multi_domain else [(None, 3)]):
        with torch.no_grad():
            logits = method.domain_view(domain).predict(x)
        assert logits.shape == (6, classes)
    stored = method.stored_parameters()
    for own in (stored["domains"].values() if method.multi_domain else [stored]):
        assert 0 < own["classifier"] <= own["total"]


def test_stored_parameters_rank_as_the_decathlon_expects(backbone_state):
    sizes = {name: _method(name, backbone_state).stored_parameters()["total"] for name in SINGLE}
    full = sizes["finetune"]
    assert sizes["scratch"] == full
    assert sizes["feature_extractor"] < sizes["bn_adapt"] < sizes["parallel_adapters"] < full
    assert sizes["spottune"] > full          # a fine-tuned copy plus the policy network
    assert sizes["random_policy"] < sizes["spottune"]


def test_feature_extractor_keeps_bn_statistics(backbone_state):
    method = _method("feature_extractor", backbone_state)
    before = {k: v.clone() for k, v in method.net.state_dict().items() if "running_mean" in k}
    method.update(torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0]))
    after = method.net.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())


def test_spottune_uses_its_own_policy_learning_rate(backbone_state):
    method = _method("spottune", backbone_state)
    lrs = sorted(group["lr"] for group in method.optimizer.param_groups)
    assert lrs == [0.01, 0.01] or lrs == sorted([0.01, method.hparams["policy_lr"]])
    assert len(method.optimizer.param_groups) == 2


def test_argmax_evaluation_is_deterministic_and_reports_policy_usage(backbone_state):
    method = _method("spottune", backbone_state).eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        first, second = method.predict(x), method.predict(x)
    assert torch.equal(first, second)
    usage = method.eval_stats(5)["policy_usage"]
    assert len(usage) == 12 and all(0.0 <= u <= 1.0 for u in usage)
    decisions = method.net.last_decisions
    assert method.eval_stats(2)["policy_usage"] == decisions[:2].float().mean(0).tolist()


def test_unknown_method_names_the_valid_choices():
    with pytest.raises(KeyError, match="valid methods: scratch, feature_extractor, finetune"):
        get_method("mixup")


def test_methods_that_need_a_backbone_refuse_to_start_without_one():
    hp = hparams("finetune", "dtd", "cpu_demo")
    with pytest.raises(ValueError, match="needs a pretrained backbone"):
        get_method("finetune")(3, hp, None)


def test_backbone_of_another_width_is_refused():
    other = resnet26(7, width=0.25).state_dict()
    with pytest.raises(ValueError, match="another architecture or width"):
        _method("finetune", other)


def test_wrapped_network_is_used_for_training_and_kept_out_of_the_state(backbone_state):
    method = _method("finetune", backbone_state)
    keys = set(method.state_dict())
    method.wrap(torch.compile)  # lazy: nothing compiles until called; refuses truth tests
    assert method.train_net is not method.net
    assert set(method.state_dict()) == keys and all(k.startswith("net.") for k in keys)


def test_weight_decay_groups_split_3x3_1x1_and_the_rest(backbone_state):
    hp = hparams("parallel_adapters", "aircraft", "adapters_paper", {"width": WIDTH, "weight_decay_3x3": 0.3,
                                                                     "weight_decay_1x1": 0.1, "weight_decay": 0.2})
    method = get_method("finetune")(3, hp, backbone_state)
    groups = {group["weight_decay"]: group["params"] for group in method.optimizer.param_groups}
    assert set(groups) == {0.3, 0.2}   # finetune has no 1x1 convolutions
    assert all(p.dim() == 4 and p.shape[-2:] == (3, 3) for p in groups[0.3])
    assert all(p.dim() < 4 for p in groups[0.2])
    adapters = get_method("parallel_adapters")(3, hp, backbone_state)
    groups = {group["weight_decay"]: group["params"] for group in adapters.optimizer.param_groups}
    assert set(groups) == {0.1, 0.2}   # 3x3 weights are frozen, the 1x1 adapters decay apart
    assert all(p.shape[-2:] == (1, 1) for p in groups[0.1])
    default = get_method("finetune")(3, hparams("finetune", "aircraft", "cpu_demo", {"width": WIDTH}), backbone_state)
    assert len(default.optimizer.param_groups) == 1   # None: one group, as before


@pytest.mark.parametrize("name, policies", [("finetune", (None,)), ("spottune", ("argmax", "sample")),
                                            ("spottune_joint", ("argmax", "sample")),
                                            ("spottune_global", ("argmax", "sample")),
                                            ("random_policy", ("random",))])
def test_eval_policies_reported_one_first(name, policies, backbone_state):
    assert _method(name, backbone_state).eval_policies() == policies
    hp = hparams("spottune", "aircraft", "spottune_paper", {"width": WIDTH})
    assert get_method("spottune")(3, hp, backbone_state).eval_policies() == ("sample", "argmax")
