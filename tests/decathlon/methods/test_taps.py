"""TAPS semantics: gates off is the frozen backbone, stored parameters follow the gates,
frozen weights never move, the penalty has the public code's form."""
import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.engine import lr_schedule
from decathlon.jobdir import TAPS_DOMAIN_FILE
from decathlon.methods import get_method
from decathlon.models import resnet26
from decathlon.models.taps import gated_layers, straight_through_gate

WIDTH = 0.125


@pytest.fixture(scope="module")
def backbone_state():
    torch.manual_seed(0)
    net = resnet26(7, width=WIDTH)
    with torch.no_grad():   # BN statistics away from their defaults, so a BN mix-up shows
        for name, buffer in net.named_buffers():
            if name.endswith("running_mean"):
                buffer.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 1.5)
    return net.state_dict()


def _taps(backbone_state, preset="cpu_demo", **overrides):
    torch.manual_seed(1)
    hp = hparams("taps", "aircraft", preset, {"width": WIDTH, "lr": 0.01, **overrides})
    return get_method("taps")(3, hp, backbone_state)


def _set_gates(method, on: set, delta_scale: float = 0.1):
    """Gate the layers at the indices in `on` on, the others off; deltas random."""
    with torch.no_grad():
        for index, (_, layer) in enumerate(gated_layers(method.net)):
            layer.delta.copy_(delta_scale * torch.randn_like(layer.delta))
            layer.score.fill_(0.5 if index in on else -0.5)


def test_every_convolution_of_the_resnet26_is_gated(backbone_state):
    layers = gated_layers(_taps(backbone_state).net)
    assert len(layers) == 25 and layers[0][0] == "stem.conv"
    assert all(layer.score.item() == pytest.approx(0.15) and layer.threshold == 0.1 for _, layer in layers)


def test_gates_off_compute_the_frozen_backbones_features(backbone_state):
    method = _taps(backbone_state)
    _set_gates(method, on=set())
    backbone = resnet26(7, width=WIDTH)
    backbone.load_state_dict(backbone_state)
    x = torch.randn(4, 3, 32, 32)
    method.eval(), backbone.eval()
    with torch.no_grad():
        features = backbone.features(x)
        assert features.abs().sum() > 0 and torch.equal(method.net.features(x), features)
        _set_gates(method, on={3})
        assert not torch.allclose(method.net.features(x), backbone.features(x))


def test_straight_through_gate_is_hard_forward_and_identity_backward():
    score = torch.tensor([0.09, 0.1, 0.3], requires_grad=True)
    gate = straight_through_gate(score, 0.1)
    assert gate.tolist() == [0.0, 1.0, 1.0]
    (gate * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert score.grad.tolist() == [1.0, 2.0, 3.0]


def test_stored_parameters_grow_by_each_delta_gated_on(backbone_state):
    method = _taps(backbone_state)
    layers = gated_layers(method.net)
    _set_gates(method, on=set())
    base = method.stored_parameters()["total"]
    bn_and_classifier = sum(p.numel() for name, p in method.net.named_parameters()
                            if not name.endswith((".delta", ".score", "conv.weight")))
    assert base == bn_and_classifier
    for on in ({0}, {0, 5}, {0, 5, 24}):
        _set_gates(method, on=on)
        assert method.stored_parameters()["total"] == base + sum(layers[i][1].delta.numel() for i in on)
    assert method.eval_stats(1)["layer_gates"] == [float(i in {0, 5, 24}) for i in range(25)]


def test_exports_hold_only_the_deltas_of_tuned_layers(backbone_state):
    method = _taps(backbone_state)
    _set_gates(method, on={2, 7})
    export = method.exports()[TAPS_DOMAIN_FILE]
    deltas = sorted(key for key in export["state"] if key.endswith(".delta"))
    names = [name for name, _ in gated_layers(method.net)]
    assert deltas == sorted(f"{names[i]}.delta" for i in (2, 7))
    assert not any(key.endswith(("conv.weight", ".score")) for key in export["state"])
    assert [name for name, on in export["gates"].items() if on] == [names[2], names[7]]


def test_frozen_weights_do_not_move_while_deltas_scores_and_bn_do(backbone_state):
    method = _taps(backbone_state)
    method.begin_epoch(1)
    frozen = {name: p.detach().clone() for name, p in method.net.named_parameters() if name.endswith("conv.weight")}
    trained = {name: p.detach().clone() for name, p in method.net.named_parameters() if p.requires_grad}
    x, y = torch.randn(6, 3, 24, 24), torch.tensor([0, 1, 2, 0, 1, 2])
    for _ in range(3):
        method.update(x, y)
    params = dict(method.net.named_parameters())
    assert len(frozen) == 25 and all(not params[n].requires_grad for n in frozen)
    assert all(torch.equal(params[name], value) for name, value in frozen.items())
    moved = {name.rpartition(".")[2] for name, value in trained.items() if not torch.equal(params[name], value)}
    assert {"delta", "score", "weight", "bias"} <= moved   # BN weight/bias and the classifier too


def test_penalty_has_the_codes_form_and_starts_after_the_warmup_epochs(backbone_state):
    method = _taps(backbone_state, "taps_paper", sparsity_weight=0.5)
    assert method.hparams["penalty_warmup_epochs"] == 2 and method.hparams["penalty_divisor"] == 52.0
    with torch.no_grad():
        for index, (_, layer) in enumerate(gated_layers(method.net)):
            layer.score.fill_(0.2 if index % 2 else -0.3)
    x, y = torch.randn(4, 3, 24, 24), torch.tensor([0, 1, 2, 0])
    expected = 0.5 * (12 * 0.2 + 13 * 0.3) / 52
    for epoch, on in ((0, False), (2, False), (3, True)):
        method.begin_epoch(epoch)
        _, logs = method.training_loss(x, y)
        assert logs["sparsity_penalty"].item() == pytest.approx(expected if on else 0.0, rel=1e-6)
    method.zero_grad()   # deltas are zero: the cross-entropy gives the scores no gradient,
    method.training_loss(x, y)[0].backward()   # so theirs is the penalty's: weight / divisor * sign(s)
    grads = [layer.score.grad.item() for _, layer in gated_layers(method.net)]
    assert grads == pytest.approx([0.5 / 52 * (1 if i % 2 else -1) for i in range(25)])


def test_cpu_demo_applies_the_penalty_from_the_second_epoch(backbone_state):
    method = _taps(backbone_state)
    method.begin_epoch(0)
    assert method.penalty_on.item() == 0.0
    method.begin_epoch(1)
    assert method.penalty_on.item() == 1.0


def test_taps_paper_anneals_the_lr_to_zero_for_its_last_epoch():
    hp = hparams("taps", "dtd", "taps_paper")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=hp["lr"])
    scheduler, lrs = lr_schedule(optimizer, hp), []
    for _ in range(hp["epochs"]):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert hp["epochs"] == 31 and lrs[0] == 0.08 and lrs[15] == pytest.approx(0.04)
    assert lrs[30] == pytest.approx(0.0, abs=1e-12) and lrs == sorted(lrs, reverse=True)


def test_unknown_taps_hyperparameters_and_schedules_are_refused_by_name():
    with pytest.raises(KeyError, match="unknown hyperparameter 'lam' for taps on dtd"):
        hparams("taps", "dtd", "cpu_demo", {"lam": 1.0})
    with pytest.raises(ValueError, match="'lr_schedule' is 'cosin'; expected one of step, cosine"):
        hparams("taps", "dtd", "taps_paper", {"lr_schedule": "cosin"})
