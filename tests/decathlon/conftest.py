"""The public codes' networks, fabricated, and their checkpoints as their authors wrote them.

Handed to the engine and cli tests by the `public` fixture below (this module, as a
namespace), `old_torch` (old_torch_writer.py: `torch.save` of PyTorch 0.3.1 and 0.4.1
under Python 2.7) and `public_backbone` (a fabricated resnet26_pretrained.t7, as 0.3.1
wrote it). Module trees whose classes carry the public names (`models.ResNet`,
`models.BasicBlock`, `models.conv_task`, `models.conv1x1`; `spottune_models.*` and
`agent_net.*`: ResNet, BasicBlock, DownsampleB), whose state_dict keys are the public
ones, with the public forwards. None of them is ever in sys.modules: the importer under
test cannot find them.
"""
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from torch import nn

WIDTHS = (64, 128, 256)


def _conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride, 1, bias=False)


def _zero_pad(x, pool):
    pooled = pool(x)
    return torch.cat((pooled, pooled * 0), 1)


# --- the residual-adapter code: module `models` -----------------------------------------
class conv1x1(nn.Module):
    """The adapters: a parallel 1x1 conv, or the series BN + 1x1 conv (only pickled here)."""

    __module__ = "models"   # pickled by this name

    def __init__(self, cin, cout, stride, series):
        super().__init__()
        self.conv = (nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cin, 1, bias=False)) if series
                     else nn.Conv2d(cin, cout, 1, stride, bias=False))


class conv_task(nn.Module):
    """3x3 conv + the task's BN (`bns.0`), with the adapter variants' extra modules."""

    __module__ = "models"   # pickled by this name

    def __init__(self, cin, cout, stride, adapter):
        super().__init__()
        self.is_proj, self.second = 1, 0
        self.conv = _conv3x3(cin, cout, stride)
        if adapter == "series":
            self.bns = nn.ModuleList([nn.Sequential(conv1x1(cout, cout, 1, True), nn.BatchNorm2d(cout))])
        else:
            self.bns = nn.ModuleList([nn.BatchNorm2d(cout)])
        if adapter == "parallel":
            self.parallel_conv = nn.ModuleList([conv1x1(cin, cout, stride, False)])

    def forward(self, x):
        return self.bns[0](self.conv(x))


class BasicBlock(nn.Module):
    """conv1 (conv_task), conv2 = (ReLU, conv_task), shortcut AvgPool2d(2) + zero channels."""

    __module__ = "models"   # pickled by this name

    def __init__(self, cin, cout, stride, adapter):
        super().__init__()
        self.conv1 = conv_task(cin, cout, stride, adapter)
        self.conv2 = nn.Sequential(nn.ReLU(True), conv_task(cout, cout, 1, adapter))
        self.shortcut = int(stride != 1 or cin != cout)
        if self.shortcut:
            self.avgpool = nn.AvgPool2d(2)

    def forward(self, x):
        residual = _zero_pad(x, self.avgpool) if self.shortcut else x
        return F.relu(self.conv2(self.conv1(x)) + residual)


class ResNet(nn.Module):
    """pre_layers_conv, layer1-3 (4 blocks each), end_bns (BN + ReLU), pool, linears."""

    __module__ = "models"   # pickled by this name

    def __init__(self, num_classes=1000, adapter=None):
        super().__init__()
        self.pre_layers_conv = conv_task(3, 32, 1, adapter)
        cin = 32
        for stage, width in enumerate(WIDTHS, 1):
            blocks = [BasicBlock(cin if b == 0 else width, width, 2 if b == 0 else 1, adapter) for b in range(4)]
            setattr(self, f"layer{stage}", nn.Sequential(*blocks))
            cin = width
        self.end_bns = nn.ModuleList([nn.Sequential(nn.BatchNorm2d(256), nn.ReLU(True))])
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linears = nn.ModuleList([nn.Linear(256, num_classes)])

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.pre_layers_conv(x))))
        return self.linears[0](self.avgpool(self.end_bns[0](x)).flatten(1))


# --- the SpotTune code: modules `spottune_models` (the net) and `agent_net` (the policy) -----
class SpotDownsampleB(nn.Module):
    def __init__(self):
        super().__init__()
        self.avg = nn.AvgPool2d(2)

    def forward(self, x):
        return _zero_pad(x, self.avg)


class SpotBasicBlock(nn.Module):
    """conv1, bn1, conv2 = (ReLU, conv), bn2; the shortcut is the ResNet's."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(cin, cout, stride), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Sequential(nn.ReLU(True), _conv3x3(cout, cout)), nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn2(self.conv2(self.bn1(self.conv1(x))))


class SpotResNet(nn.Module):
    """Stem (no ReLU), frozen `blocks` and fine-tuned `parallel_blocks` with their
    shortcuts (`ds`, `parallel_ds`), head BN + ReLU, pool, `linear`."""

    def __init__(self, layers, num_classes):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(3, 32), nn.BatchNorm2d(32)
        self.layer_config = list(layers)
        for prefix in ("", "parallel_"):
            stages, shortcuts, cin = [], [], 32
            for width, count in zip(WIDTHS, layers):
                stages.append(nn.ModuleList(
                    [self.Block(cin if b == 0 else width, width, 2 if b == 0 else 1) for b in range(count)]))
                shortcuts.append(self.Downsample())
                cin = width
            setattr(self, f"{prefix}blocks", nn.ModuleList(stages))
            setattr(self, f"{prefix}ds", nn.ModuleList(shortcuts))
        self.bn2 = nn.Sequential(nn.BatchNorm2d(256), nn.ReLU(True))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(256, num_classes)

    def forward(self, x, policy=None):
        x, t = self.bn1(self.conv1(x)), 0
        for stage, count in enumerate(self.layer_config):
            for b in range(count):
                frozen = F.relu((self.ds[stage](x) if b == 0 else x) + self.blocks[stage][b](x))
                if policy is None:
                    x = frozen
                else:
                    tuned = F.relu((self.parallel_ds[stage](x) if b == 0 else x) + self.parallel_blocks[stage][b](x))
                    a = policy[:, t].float().view(-1, 1, 1, 1)
                    x = a * tuned + (1 - a) * frozen
                t += 1
        return self.linear(self.avgpool(self.bn2(x)).flatten(1))


def _module(name, classes):
    """A SpotTune-code module: subclasses of the layouts above under the public names."""
    module = types.ModuleType(name)
    for public_name, base in classes.items():
        attributes = {"__module__": name, "__qualname__": public_name}
        if issubclass(base, SpotResNet):
            attributes.update(Block=getattr(module, "BasicBlock"), Downsample=getattr(module, "DownsampleB"))
        setattr(module, public_name, type(public_name, (base,), attributes))
    return module


def _models():
    models = types.ModuleType("models")
    models.conv1x1, models.conv_task, models.BasicBlock, models.ResNet = conv1x1, conv_task, BasicBlock, ResNet
    return models


MODULES = {
    "models": _models(),
    **{name: _module(name, {"BasicBlock": SpotBasicBlock, "DownsampleB": SpotDownsampleB, "ResNet": SpotResNet})
       for name in ("spottune_models", "agent_net")},
}


def randomised(net, seed):
    """`net` in eval mode with seeded random weights and BN statistics (none left at a
    default value, so any mapping mistake shows in the outputs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.weight.shape[0] * module.weight[0, 0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / fan_out) ** 0.5)
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) * 0.5 + 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
                module.num_batches_tracked.fill_(7)
            elif isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) / module.in_features ** 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return net.eval()


def backbone(adapter=None, seed=0):
    return randomised(MODULES["models"].ResNet(1000, adapter), seed)


def spottune(backbone_net, num_classes, seed=1):
    """(net, agent) as SpotTune's main.py saves them, the frozen block convolutions
    copied from `backbone_net` (a fabricated public ResNet)."""
    net = randomised(MODULES["spottune_models"].ResNet((4, 4, 4), num_classes), seed)
    agent = randomised(MODULES["agent_net"].ResNet((1, 1, 1), 24), seed + 1)
    with torch.no_grad():
        for stage in range(3):
            for b in range(4):
                public = getattr(backbone_net, f"layer{stage + 1}")[b]
                net.blocks[stage][b].conv1.weight.copy_(public.conv1.conv.weight)
                net.blocks[stage][b].conv2[1].weight.copy_(public.conv2[1].conv.weight)
    return net, agent


class Hostile:
    """Unpickles as `call(*args)`."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def _load_writer():
    """old_torch_writer.py (pytest's importlib mode puts no test folder on sys.path)."""
    spec = importlib.util.spec_from_file_location("old_torch_writer", Path(__file__).with_name("old_torch_writer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def old_torch():
    """`torch.save` as PyTorch 0.3.1 / 0.4.1 wrote it under Python 2.7: .save(obj, path,
    version) for version in .VERSIONS, and the markers .Global, .Call, .StorageOf."""
    return _load_writer()


@pytest.fixture(scope="session")
def public():
    """This module: the fabricated public classes and `backbone`, `spottune`, `randomised`, `Hostile`."""
    return sys.modules[__name__]


@pytest.fixture(scope="session")
def public_backbone(old_torch, tmp_path_factory):
    """A fabricated resnet26_pretrained.t7 as the residual-adapter code saved it under
    PyTorch 0.3.1: .file, .net (the network it holds), .x (a batch of images) and
    .logits (the network's outputs on them)."""
    net = backbone()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = net(x)
    file = old_torch.save({"net": net, "acc": np.float64(60.32), "epoch": 59},
                          tmp_path_factory.mktemp("public") / "resnet26_pretrained.t7", "0.3.1")
    return SimpleNamespace(file=file, net=net, x=x, logits=logits)
