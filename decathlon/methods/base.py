"""The shape every method has (DomainBed style): build a network, update, predict.

A method trains and predicts ONE domain against the shared pretrained backbone. It owns
its network (`self.net`) and its optimizer; the engine owns the loop, the schedule, the
records and the checkpoints. `update` runs through `self.train_net`: `self.net` itself,
or what the engine wrapped it in (`wrap`: DistributedDataParallel, torch.compile). The
wrapper is kept outside the module tree so checkpoints hold `net.*` keys only and
resume whatever the number of processes.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from decathlon.models import RESNET26, is_vit, network_of, resnet26

# What `Method.backbones` may say: the architectures a method is defined on.
BACKBONE_KINDS = ("resnet26", "any", "vit")


class Method(nn.Module):
    """Base class: subclasses set `self.net` in `build` and may override the hooks."""

    name = "base"
    uses_backbone = True   # False only for methods that ignore the pretrained weights
    multi_domain = False   # True: one job trains every domain of the run (see spottune_joint)
    backbones = "resnet26"  # the backbones it is defined on: "resnet26", "any" (timm too) or "vit"
    autocast = contextlib.nullcontext   # the engine sets bf16 autocast on CUDA

    def __init__(self, num_classes: int, hparams: dict, backbone_state: dict | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.hparams = dict(hparams)
        check_backbone(type(self), self.hparams.get("arch", RESNET26))
        if self.uses_backbone and backbone_state is None:
            raise ValueError(f"method {self.name!r} needs a pretrained backbone (run `python -m decathlon pretrain`)")
        self.net = self.build(backbone_state)
        self.optimizer = self.make_optimizer()

    # --- hooks -----------------------------------------------------------------------
    def build(self, backbone_state: dict | None) -> nn.Module:
        raise NotImplementedError

    def make_optimizer(self) -> torch.optim.Optimizer:
        """SGD with momentum over `param_groups`, as the residual-adapter and SpotTune codes
        train; a method whose public code uses another optimizer overrides this."""
        return torch.optim.SGD(self.param_groups(), lr=self.hparams["lr"], momentum=self.hparams["momentum"])

    def param_groups(self) -> list:
        """SGD parameter groups; each group's `lr` is scaled by the engine's schedule."""
        return decay_groups(self.net.parameters(), self.hparams["lr"], self.hparams)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple:
        """(loss, logs) for one batch; methods with extra terms (budget, ...) override it."""
        logits = self.train_net(x)
        return F.cross_entropy(logits, y), {}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def stored_parameters(self) -> dict:
        """Parameters this domain stores beyond the shared backbone (for the Decathlon's
        #par): {'total', 'classifier'}. By default: every trainable parameter."""
        return {"total": sum(p.numel() for p in self.net.parameters() if p.requires_grad),
                "classifier": sum(p.numel() for p in self.classifier().parameters())}

    def classifier(self) -> nn.Module:
        return self.net.classifier

    def exports(self) -> dict:
        """{file name: content} a user ships for this domain beside the backbone (default:
        nothing); the engine writes each atomically with torch.save. Contents must be
        tensors, numbers, strings, lists and dicts, so they load with weights_only=True."""
        return {}

    def eval_stats(self, count: int) -> dict:
        """Extra statistics (e.g. SpotTune's policy usage) of the first `count` images of the
        batch `predict` saw last (the rest are padding repeats); JSON-able."""
        return {}

    def eval_policies(self) -> tuple:
        """The test-time decision policies a finished job is evaluated with, the reported
        one first; None for methods without decisions."""
        return (None,)

    def use_eval_policy(self, policy: str | None) -> None:
        """Make `predict` use `policy` (one of `eval_policies()`)."""

    def begin_epoch(self, epoch: int) -> bool:
        """Called before each training epoch (also the first one after a resume). A method
        whose structure changes between epochs (NetTailor prunes) does it here and returns
        True once it has made a new optimizer: the engine then starts a new lr schedule at
        this epoch and re-captures its step. Such a method also restores that structure in
        `load_state_dict` from what its state dict holds."""
        return False

    def domain_view(self, domain: str):
        """What evaluates one domain (predict, eval_stats, ...): the method itself here."""
        return self

    # --- fixed behaviour -------------------------------------------------------------
    @property
    def train_net(self) -> nn.Module:
        wrapped = self.__dict__.get("_wrapped_net")  # a compiled module refuses truth tests
        return self.net if wrapped is None else wrapped

    def wrap(self, wrapper) -> None:
        """Train through `wrapper(train_net)` from now on (not a registered submodule)."""
        self.__dict__["_wrapped_net"] = wrapper(self.train_net)
        self.__dict__.setdefault("_wrappers", []).append(wrapper)

    def rewrap(self) -> None:
        """Wrap `self.net` again in every wrapper so far (after it changed its structure)."""
        self.__dict__.pop("_wrapped_net", None)
        for wrapper in self.__dict__.pop("_wrappers", []):
            self.wrap(wrapper)

    def update(self, *batch) -> dict:
        """One optimisation step on `batch` (images, labels; a multi-domain method's:
        domain, images, labels, ...); returns the losses as detached 0-d device tensors.

        Nothing here waits for the device (no .item()): the engine accumulates the losses
        where they are and may capture this whole step in a CUDA graph."""
        self.net.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss, logs = self.training_loss(*batch)
        loss.backward()
        self.optimizer.step()
        return {"loss": loss.detach(), **logs}


def decay_groups(parameters, lr: float, hparams: dict) -> list:
    """SGD groups of the trainable parameters, split by weight decay.

    The residual-adapter code decays 3x3 convolution weights, 1x1 convolution weights and
    everything else separately (`weight_decay_3x3`, `weight_decay_1x1`, `weight_decay`); a
    None value means the same as `weight_decay`. Empty groups are left out."""
    rest = hparams["weight_decay"]
    decays = {"3x3": hparams.get("weight_decay_3x3"), "1x1": hparams.get("weight_decay_1x1")}
    groups = {}
    for parameter in parameters:
        if not parameter.requires_grad:
            continue
        kind = f"{parameter.shape[-1]}x{parameter.shape[-2]}" if parameter.dim() == 4 else "rest"
        decay = rest if decays.get(kind) is None else decays[kind]
        groups.setdefault(decay, []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for decay, params in groups.items()]


def check_backbone(method_cls: type, arch: str) -> None:
    """One clear error where `method_cls` is not defined on the backbone `arch`."""
    kind = method_cls.backbones
    if kind == "any" or (kind == "resnet26" and arch == RESNET26) or (kind == "vit" and is_vit(arch)):
        return
    what = {"resnet26": "the benchmark's ResNet-26 (arch resnet26)", "vit": "ViT backbones (timm:vit_*, deit_*, eva*)"}
    raise ValueError(f"method {method_cls.name!r} is defined on {what[kind]} only, not on backbone arch {arch!r}")


def new_backbone(hparams: dict, num_classes: int, backbone_state: dict | None, **kwargs) -> nn.Module:
    """The network of the job's backbone arch (hyperparameter `arch`: ResNet-26 or a timm
    model, decathlon.models.backbones) for this domain, with the pretrained weights when given.

    The classifier is always new (it has this domain's classes); every other tensor
    of the checkpoint must fit, else the checkpoint is from another architecture."""
    net = network_of(hparams, num_classes, **kwargs)
    if backbone_state is not None:
        load_backbone_weights(net, backbone_state)
    return net


def pretrained_backbone(hparams: dict, backbone_state: dict) -> nn.Module:
    """The pretrained ResNet-26 whole, its imagenet12 classifier included (SpotTune keeps
    it frozen: the multi-domain model then also serves imagenet12, as the papers' rows do)."""
    net = resnet26(backbone_state["classifier.weight"].shape[0], width=hparams["width"])
    load_backbone_weights(net, backbone_state)
    net.classifier.load_state_dict({"weight": backbone_state["classifier.weight"],
                                    "bias": backbone_state["classifier.bias"]})
    return net


def load_backbone_weights(net: nn.Module, backbone_state: dict) -> None:
    """Copy every pretrained tensor but the classifier; the network may have more
    (adapters), never other shapes."""
    state = {k: v for k, v in backbone_state.items() if not k.startswith("classifier.")}
    own = net.state_dict()
    for key, value in state.items():
        if key not in own or own[key].shape != value.shape:
            got = tuple(value.shape)
            want = tuple(own[key].shape) if key in own else "absent"
            raise ValueError(f"backbone tensor {key!r} has shape {got}, this network expects {want}: "
                             f"the checkpoint is from another architecture or width")
    net.load_state_dict(state, strict=False)
