"""Piggyback as the public code trains it: masks over the frozen backbone, counted 1 bit each."""
import pytest
import torch
from torch import nn

from decathlon.benchmark import hparams
from decathlon.engine import JobSpec, run_job
from decathlon.jobdir import PIGGYBACK_FILE
from decathlon.methods import get_method
from decathlon.methods.base import new_backbone
from decathlon.models import resnet26
from decathlon.models.masked import masked_convolutions, unpack_mask
from decathlon.report import collect, leaderboards

WIDTH = 0.125


@pytest.fixture(scope="module")
def backbone_state():
    torch.manual_seed(0)
    state = resnet26(7, width=WIDTH).state_dict()
    for key in state:   # BN statistics other than 0 and 1, as a pretrained network's
        if "running_mean" in key:
            state[key] = 0.1 * torch.randn_like(state[key])
        elif "running_var" in key:
            state[key] = torch.rand_like(state[key]) + 0.5
    return state


def _piggyback(backbone_state, **overrides):
    hp = hparams("piggyback", "dtd", "cpu_demo", {"width": WIDTH, **overrides})
    return get_method("piggyback")(3, hp, backbone_state)


def _batch():
    generator = torch.Generator().manual_seed(3)
    return torch.randn(8, 3, 24, 24, generator=generator), torch.randint(0, 3, (8,), generator=generator)


def test_an_all_ones_mask_gives_the_pretrained_networks_outputs_bit_for_bit(backbone_state):
    torch.manual_seed(1)
    method = _piggyback(backbone_state).eval()
    plain = new_backbone(method.hparams, 3, backbone_state).eval()
    plain.classifier.load_state_dict(method.net.classifier.state_dict())
    assert all(bool(conv.mask().all()) for conv in masked_convolutions(method.net).values())
    x, _ = _batch()
    with torch.no_grad():
        assert torch.equal(method.predict(x), plain(x))


@pytest.mark.parametrize("train_bn", [True, False])
def test_training_moves_scores_and_never_the_frozen_weights(backbone_state, train_bn):
    method = _piggyback(backbone_state, train_bn=train_bn, mask_lr=0.01)
    norms = {name for name, module in method.net.resnet.named_modules() if isinstance(module, nn.BatchNorm2d)}
    frozen = {name: tensor.clone() for name, tensor in method.net.resnet.state_dict().items()
              if name.endswith("conv.weight") or not train_bn and name.rpartition(".")[0] in norms}
    assert len(frozen) == 25 + (0 if train_bn else 5 * len(norms))
    for _ in range(3):
        method.update(*_batch())
    state = method.net.resnet.state_dict()
    assert all(torch.equal(state[name], tensor) for name, tensor in frozen.items())
    assert any(not bool(conv.mask().all()) for conv in masked_convolutions(method.net).values())
    bn_stats = [name for name in state if "running_mean" in name]
    moved = [name for name in bn_stats if not torch.equal(state[name], backbone_state[name])]
    assert bool(moved) == train_bn   # the public code's train_nobn keeps BN statistics


def test_the_gradient_reaches_the_scores_through_the_straight_through_estimator(backbone_state):
    method = _piggyback(backbone_state)
    method.net.train()
    x, y = _batch()
    loss, _ = method.training_loss(x, y)
    loss.backward()
    for conv in masked_convolutions(method.net).values():
        assert conv.mask_scores.grad is not None and conv.mask_scores.grad.abs().sum() > 0
        assert conv.weight.grad is None


def test_adam_trains_masks_and_classifier_at_their_own_rates(backbone_state):
    method = _piggyback(backbone_state)
    assert isinstance(method.optimizer, torch.optim.Adam)
    masks, classifier = method.optimizer.param_groups
    assert (masks["lr"], classifier["lr"]) == (0.002, 0.01)   # cpu_demo's; the paper's are 1e-4 each
    assert masks["weight_decay"] == classifier["weight_decay"] == 0.0
    assert {id(p) for p in classifier["params"]} == {id(p) for p in method.net.classifier.parameters()}
    method.update(*_batch())
    assert not masks["capturable"]   # on CUDA it is captured with the step: capturable there


def test_par_of_ten_domains_on_the_real_resnet26_follows_the_papers_counting():
    torch.manual_seed(0)
    state = resnet26(1000).state_dict()
    reference = sum(p.numel() for p in resnet26(0).parameters())   # what the engine records
    for train_bn, expected in ((True, 1.2929), (False, 1.2809)):
        hp = hparams("piggyback", "dtd", "piggyback_paper", {"train_bn": train_bn})
        stored = get_method("piggyback")(47, hp, state).stored_parameters()
        per_domain = (stored["total"] - stored["classifier"]) / reference
        assert 1 + 9 * per_domain == pytest.approx(expected, abs=1e-4)
    assert 1 + 9 / 32 == pytest.approx(1.28, abs=0.002)   # the paper's figure: a mask is 1/32 of a float


def test_a_finished_job_stores_its_masks_and_reports_a_fractional_par(tiny_decathlon, tiny_backbone, tiny_hparams,
                                                                     tmp_path):
    out = tmp_path / "run" / "jobs" / "cpu_demo-train" / "piggyback" / "dtd" / "seed0"
    hp = hparams("piggyback", "dtd", "cpu_demo", tiny_hparams)
    final = run_job(JobSpec(method="piggyback", domain="dtd", data=str(tiny_decathlon), out=str(out), hparams=hp,
                            backbone=str(tiny_backbone), device="cpu", progress=False, extra={"preset": "cpu_demo"}))
    stored, reference = final["stored_parameters"], final["reference_parameters"]
    assert stored["total"] != int(stored["total"])   # masks count 1/32 each
    exported = torch.load(out / PIGGYBACK_FILE, weights_only=True)
    convs = [name for name in exported["masks"]]
    assert len(convs) == 25 and all(unpack_mask(exported["masks"][name]).dtype == torch.bool for name in convs)
    assert set(exported["classifier"]) == {"weight", "bias"} and exported["norms"]
    board = next(b for b in leaderboards(collect([tmp_path / "run"])) if b.split == "val")
    expected = 1 + (stored["total"] - stored["classifier"]) / reference
    assert board.value("piggyback", "#par") == pytest.approx(expected)


def test_a_resumed_job_ends_with_the_masks_and_adam_state_of_an_uninterrupted_one(
        tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path, monkeypatch):
    from decathlon.checkpoints import load_checkpoint
    from decathlon.engine import trainer

    def spec(out, **changes):
        hp = hparams("piggyback", "dtd", "cpu_demo", tiny_hparams)
        return JobSpec(method="piggyback", domain="dtd", data=str(tiny_decathlon), out=str(out), hparams=hp,
                       backbone=str(tiny_backbone), device="cpu", progress=False, **changes)
    run_job(spec(tmp_path / "whole"))
    real_save = trainer.save_atomic

    def save_then_die(obj, path):
        real_save(obj, path)
        raise KeyboardInterrupt   # killed right after the checkpoint of epoch 1
    monkeypatch.setattr(trainer, "save_atomic", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_job(spec(tmp_path / "killed"))
    monkeypatch.setattr(trainer, "save_atomic", real_save)
    run_job(spec(tmp_path / "killed", resume=True))
    whole, resumed = (load_checkpoint(tmp_path / name / "checkpoint.pt", "job") for name in ("whole", "killed"))
    a, b = whole["method"], resumed["method"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    a, b = whole["optimizer"], resumed["optimizer"]
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    assert all(torch.equal(a["state"][i][k], b["state"][i][k]) for i in a["state"] for k in a["state"][i])


def test_an_unknown_piggyback_hyperparameter_is_refused_by_name():
    with pytest.raises(KeyError, match="unknown hyperparameter 'mask_rate' for piggyback on dtd"):
        hparams("piggyback", "dtd", "cpu_demo", {"mask_rate": 0.1})
    with pytest.raises(ValueError, match="hyperparameter 'train_bn' is 1; expected a bool"):
        hparams("piggyback", "dtd", "cpu_demo", {"train_bn": 1})


def test_piggyback_paper_is_the_public_codes_schedule():
    hp = hparams("piggyback", "cifar100", "piggyback_paper")
    assert (hp["lr"], hp["mask_lr"], hp["weight_decay"]) == (1e-4, 1e-4, 0.0)
    assert (hp["batch_size"], hp["epochs"], hp["lr_milestones"], hp["lr_gamma"]) == (32, 30, [15], 0.1)
    assert (hp["mask_scale"], hp["mask_threshold"], hp["train_bn"]) == (1e-2, 5e-3, True)
    baseline = hparams("finetune", "cifar100", "piggyback_paper")   # the code's run_baselines.sh
    assert (baseline["lr"], baseline["momentum"], baseline["epochs"]) == (1e-3, 0.9, 30)


def test_an_unknown_hyperparameter_on_the_command_line_is_one_line(tiny_decathlon, tiny_backbone, tmp_path, capsys):
    from decathlon.cli import main
    argv = ["train", "--method", "piggyback", "--domain", "dtd", "--data", str(tiny_decathlon), "--backbone",
            str(tiny_backbone), "--out", str(tmp_path / "job"), "--hparam", "mask_rate=0.1"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "unknown hyperparameter 'mask_rate'" in err and "\n" not in err
    assert not (tmp_path / "job").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graph_replayed_steps_match_eager_ones_with_capturable_adam(backbone_state):
    from decathlon.engine.step import EagerStep, GraphedStep
    device = torch.device("cuda")
    torch.manual_seed(0)
    eager = _piggyback(backbone_state, mask_lr=0.01).to(device)
    graphed = get_method("piggyback")(3, eager.hparams, backbone_state).to(device)
    graphed.load_state_dict(eager.state_dict())
    runners = {"eager": EagerStep(eager), "graph": GraphedStep(graphed, warmup_steps=2)}
    for index in range(8):
        x, y = (t.to(device) for t in _batch())
        if index == 5:   # a schedule step: captured again with the new rates
            for method in (eager, graphed):
                for group in method.optimizer.param_groups:
                    group["lr"] *= 0.1
        for run in runners.values():
            assert torch.isfinite(run(x, y)["loss"])
    assert runners["graph"].captures == 2 and runners["graph"].kind == "cuda_graph"
    assert all(group["capturable"] for group in graphed.optimizer.param_groups)
    for (key, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
        if a.is_floating_point():
            assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), key
