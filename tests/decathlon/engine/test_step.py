"""Training step runners: eager on CPU, replayed from a CUDA graph on CUDA; device-side loss sums."""
import copy

import pytest
import torch

from decathlon.benchmark import hparams
from decathlon.data import read_manifest
from decathlon.engine import JobSpec, LossMeter, configure_precision, distributed, make_step
from decathlon.engine.step import EagerStep, GraphedStep
from decathlon.engine.trainer import _loaders
from decathlon.methods import get_method
from decathlon.models import resnet26

WIDTH = 0.125
cuda_only = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _method(name, device="cpu"):
    torch.manual_seed(0)
    state = resnet26(5, WIDTH).state_dict()
    hp = hparams(name, "aircraft", "cpu_demo", {"width": WIDTH, "lr": 0.05})
    return get_method(name)(4, hp, state).to(device)


def _batches(n, device, size=24):
    generator = torch.Generator().manual_seed(3)
    return [(torch.randn(8, 3, size, size, generator=generator).to(device),
             torch.randint(0, 4, (8,), generator=generator).to(device)) for _ in range(n)]


def test_cpu_runs_eagerly_and_refuses_graphs():
    method = _method("finetune")
    assert isinstance(make_step(method, torch.device("cpu"), False), EagerStep)
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        make_step(method, torch.device("cpu"), True)


def test_update_returns_device_tensors_and_the_meter_sums_them_on_the_device():
    method, meter = _method("spottune_global"), LossMeter()
    step = make_step(method, torch.device("cpu"), False)
    outs = []
    for x, y in _batches(3, "cpu"):
        out = step(x, y)
        assert all(torch.is_tensor(v) and v.dim() == 0 and not v.requires_grad for v in out.values())
        outs.append({k: float(v) for k, v in out.items()})
        meter.add(out)
    means = meter.means()
    assert set(means) == {"loss", "budget_loss"} and meter.steps == 3
    assert means["loss"] == pytest.approx(sum(o["loss"] for o in outs) / 3)


def test_precision_sets_autocast_and_refuses_unknown_values():
    method = _method("finetune")
    configure_precision(method, "bf16", torch.device("cpu"))
    x, y = _batches(1, "cpu")[0]
    with method.autocast():
        assert method.net(x).dtype == torch.bfloat16
    configure_precision(method, "fp32", torch.device("cpu"))
    with method.autocast():
        assert method.net(x).dtype == torch.float32
    with pytest.raises(ValueError, match="precision 'fp16'"):
        configure_precision(method, "fp16", torch.device("cpu"))


def test_a_partial_batch_is_never_captured():
    """The last, shorter batch of an epoch without drop_last runs eagerly: it gets no graph
    entry of its own (on CPU only the decision is tested; the side stream is never made)."""
    step = GraphedStep(_method("finetune"), batch_size=8)
    full, partial = _batches(1, "cpu")[0], tuple(item[:3] for item in _batches(1, "cpu")[0])
    assert not step.is_partial(full) and step.is_partial(partial)
    assert step.graph_for(partial) is None and not step.graphs
    entry = step.graph_for(full)
    assert entry is not None and step.graph_for(full) is entry and step.graph_for(partial) is None
    joint = ("dtd", *full, "svhn", *partial)   # a joint step with one domain's batch short
    assert step.is_partial(joint) and step.graph_for(joint) is None and len(step.graphs) == 1
    assert GraphedStep(_method("finetune")).graph_for(partial) is not None   # no batch size: any shape


def test_training_keeps_the_partial_batch_where_the_preset_does(tiny_decathlon, tiny_hparams, tmp_path):
    """ceil(n / batch) steps per epoch, every image counted, and the centre crops of the
    preset's rounding, for training and evaluation loaders alike."""
    for drop_last, rounding in ((False, "half_away"), (True, "half_even")):
        hp = hparams("finetune", "dtd", "cpu_demo", dict(tiny_hparams, drop_last=drop_last, crop_rounding=rounding))
        spec = JobSpec("finetune", "dtd", str(tiny_decathlon), str(tmp_path), hp)
        train, images, evaluation = _loaders(spec, read_manifest(tiny_decathlon), distributed.local("cpu"), False)
        batch, count = hp["batch_size"], train.num_images
        assert count % batch   # the split leaves a partial batch
        assert len(train) == (-(-count // batch) if not drop_last else count // batch)
        assert images == (count if not drop_last else count // batch * batch)
        assert {loader.transform.crop_rounding for loader in (train, *evaluation.values())} == {rounding}


@cuda_only
def test_graphed_training_runs_the_partial_batch_eagerly_between_replays():
    device = torch.device("cuda")
    step = GraphedStep(_method("finetune", device), warmup_steps=1, batch_size=8)
    batches = _batches(3, device)
    for epoch in range(3):
        for x, y in batches + [(batches[0][0][:3], batches[0][1][:3])]:
            assert torch.isfinite(step(x, y)["loss"])
    assert len(step.graphs) == 1 and step.captures == 1 and step.kind == "cuda_graph"


@cuda_only
@pytest.mark.parametrize("name", ["finetune", "spottune"])
def test_graph_replays_match_eager_steps_and_recapture_on_lr_change(name):
    device = torch.device("cuda")
    eager, graphed = _method(name, device), None
    graphed = copy.deepcopy(eager)
    graphed.optimizer = type(eager.optimizer)(graphed.param_groups(), lr=0.05, momentum=0.9)
    eager.optimizer = type(eager.optimizer)(eager.param_groups(), lr=0.05, momentum=0.9)
    runners = {"eager": EagerStep(eager), "graph": GraphedStep(graphed, warmup_steps=2)}
    batches = _batches(8, device)
    for index, (x, y) in enumerate(batches):
        if index == 5:   # a schedule step: the graph must be captured again
            for method in (eager, graphed):
                for group in method.optimizer.param_groups:
                    group["lr"] *= 0.1
        losses = {kind: float(run(x, y)["loss"]) for kind, run in runners.items()}
        assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert runners["graph"].captures == 2
    if name == "finetune":   # no randomness inside the step: the same parameters, up to cuDNN's order
        for (key, a), b in zip(eager.state_dict().items(), graphed.state_dict().values()):
            if a.is_floating_point():
                assert torch.allclose(a, b, rtol=1e-3, atol=1e-4), key


@cuda_only
@pytest.mark.parametrize("method", ["finetune", "spottune", "spottune_joint"])
def test_cuda_jobs_train_from_captured_graphs(method, tiny_decathlon, tiny_backbone, tiny_hparams, tmp_path):
    """The engine on a GPU: resident data, the step replayed from CUDA graphs (one per
    domain for the joint job), bf16, records saying so."""
    from decathlon.benchmark import joint_hparams
    from decathlon.benchmark import hparams
    from decathlon.engine import run_job
    from decathlon.engine import JobSpec

    overrides = dict(tiny_hparams, epochs=2, precision="bf16")
    joint = method == "spottune_joint"
    hp = joint_hparams(method, ["dtd", "svhn"], "cpu_demo", overrides) if joint else \
        hparams(method, "dtd", "cpu_demo", overrides)
    final = run_job(JobSpec(method, "dtd+svhn" if joint else "dtd", str(tiny_decathlon), str(tmp_path), hp,
                            backbone=str(tiny_backbone), device="cuda", progress=False,
                            domains=("dtd", "svhn") if joint else ()))
    assert final["execution"]["step"] == "cuda_graph"
    assert final["execution"]["cudnn_benchmark"] is True and torch.backends.cudnn.benchmark   # the public codes'
    assert all(e["splits"]["test"]["accuracy"] is not None for e in final["evaluations"])
