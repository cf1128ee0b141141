"""The public codes' checkpoints as our state dicts: architecture checks and key mapping.

Two formats, both legacy `torch.save` files of whole pickled modules written under
Python 2.7, read by `legacy_pickle.read_legacy_torch` without running them:

* The residual-adapter authors' `resnet26_pretrained.t7` (PyTorch 0.3), `{'net':
  models.ResNet, 'acc': a numpy float64, 'epoch'}`: `public_backbone_state` checks it is
  the plain ResNet-26 (25 3x3 convs in order with their shapes and strides, 26 BNs,
  Linear(256, 1000)) and maps its names to our `resnet26(1000)`: `pre_layers_conv` ->
  `stem`, `layer{s}.{b}.conv1` and `layer{s}.{b}.conv2.1` -> `blocks.{4(s-1)+b}.conv_bn1`
  / `conv_bn2` (`.conv.weight`, BN `.bns.0.*` -> `.bn.*`), `end_bns.0.0` -> `head_bn`,
  `linears.0` -> `classifier`.
* SpotTune's `cv/<domain>/<domain>.t7` (PyTorch 0.4.1), `{'net': spottune_models.ResNet,
  'agent': agent_net.ResNet}`: `public_spottune_state` maps it onto one domain of a
  per-domain-policy `SpotTuneNet` (what a SpotTune job exports as `spottune_domain.pt`)
  after checking that its frozen block convolutions are the backbone's.

Either may be DataParallel-wrapped (keys under `module.`). BNs of PyTorch < 0.4.1 lack
`num_batches_tracked`; it is set to 0 (it only matters to BN layers with momentum=None).
"""
from __future__ import annotations

import torch

from decathlon.data import DOMAINS
from decathlon.checkpoints.errors import CheckpointError
from decathlon.checkpoints.legacy_pickle import PickledModule, module_tensors, read_legacy_torch
from decathlon.models import GUMBEL_TEMPERATURE, SpotTuneNet, resnet26
from decathlon.models.resnet import STAGE_WIDTHS, STEM_WIDTH

DATA_PARALLEL = "torch.nn.parallel.data_parallel.DataParallel"
# Every module class the two public formats pickle (`models.conv1x1` is the adapter of the
# series/parallel nets, read only to refuse them by name).
PUBLIC_CLASSES = (
    *(f"torch.nn.modules.{name}" for name in (
        "conv.Conv2d", "batchnorm.BatchNorm2d", "container.Sequential", "container.ModuleList",
        "activation.ReLU", "pooling.AvgPool2d", "pooling.AdaptiveAvgPool2d", "linear.Linear")),
    DATA_PARALLEL, "models.ResNet", "models.BasicBlock", "models.conv_task", "models.conv1x1",
    *(f"{module}.{name}" for module in ("spottune_models", "agent_net")
      for name in ("ResNet", "BasicBlock", "DownsampleB")))
BACKBONE_CLASSES = 1000      # imagenet12, the domain the public ResNet-26 was trained on
POLICY_OUTPUTS = 24          # SpotTune's agent: 12 blocks x (frozen, fine-tuned)
BN_EPS = 1e-5                # every BN of both codes and of ours
ADAPTER_MARKERS = {          # keys only the residual-adapter nets have
    ".parallel_conv.": "a parallel residual-adapter net (Rebuffi 2018: a 1x1 conv beside each 3x3 conv)",
    ".bns.0.0.conv.": "a series residual-adapter net (Rebuffi 2017: BN + 1x1 conv after each 3x3 conv)"}


def _blocks(blocks_per_stage):
    """(stage, block in stage, our block index, in channels, out channels, stride)."""
    index, channels = 0, STEM_WIDTH
    for stage, (width, count) in enumerate(zip(STAGE_WIDTHS, blocks_per_stage)):
        for block in range(count):
            yield stage, block, index, channels, width, 2 if block == 0 else 1
            index, channels = index + 1, width


def _conv(public: str, ours: str, cin: int, cout: int, stride: int) -> list:
    """One 3x3 convolution weight: (public key, our key, shape, checks of its module)."""
    return [(public, ours, (cout, cin, 3, 3), {"stride": (stride, stride), "padding": (1, 1)})]


def _bn(public: str, ours: str, channels: int) -> list:
    entries = [(f"{public}.{name}", f"{ours}.{name}", (channels,), {})
               for name in ("weight", "bias", "running_mean")]
    return entries + [(f"{public}.running_var", f"{ours}.running_var", (channels,), {"eps": BN_EPS}),
                      (f"{public}.num_batches_tracked", f"{ours}.num_batches_tracked", (), {})]


def _backbone_entries() -> list:
    entries = _conv("pre_layers_conv.conv.weight", "stem.conv.weight", 3, STEM_WIDTH, 1)
    entries += _bn("pre_layers_conv.bns.0", "stem.bn", STEM_WIDTH)
    for stage, block, index, cin, cout, stride in _blocks((4, 4, 4)):
        for public, ours, c_in, s in ((f"layer{stage + 1}.{block}.conv1", f"blocks.{index}.conv_bn1", cin, stride),
                                      (f"layer{stage + 1}.{block}.conv2.1", f"blocks.{index}.conv_bn2", cout, 1)):
            entries += _conv(f"{public}.conv.weight", f"{ours}.conv.weight", c_in, cout, s)
            entries += _bn(f"{public}.bns.0", f"{ours}.bn", cout)
    return entries + _bn("end_bns.0.0", "head_bn", STAGE_WIDTHS[-1]) + _linear(
        "linears.0", "classifier", BACKBONE_CLASSES)


def _linear(public: str, ours: str, outputs: int) -> list:
    return [(f"{public}.weight", f"{ours}.weight", (outputs, STAGE_WIDTHS[-1]), {}),
            (f"{public}.bias", f"{ours}.bias", (outputs,), {})]


def _spottune_stem_and_head(ours_stem: str, ours_head_bn: str, ours_linear: str, outputs: int) -> list:
    return (_conv("conv1.weight", f"{ours_stem}.conv.weight", 3, STEM_WIDTH, 1)
            + _bn("bn1", f"{ours_stem}.bn", STEM_WIDTH)
            + _bn("bn2.0", ours_head_bn, STAGE_WIDTHS[-1]) + _linear("linear", ours_linear, outputs))


def _spottune_block(public: str, ours: str, cin: int, cout: int, stride: int, bn1: str | None = None,
                    bn2: str | None = None) -> list:
    """A SpotTune-code BasicBlock onto our BasicBlock `ours` (BNs elsewhere when given)."""
    return (_conv(f"{public}.conv1.weight", f"{ours}.conv_bn1.conv.weight", cin, cout, stride)
            + _bn(f"{public}.bn1", bn1 or f"{ours}.conv_bn1.bn", cout)
            + _conv(f"{public}.conv2.1.weight", f"{ours}.conv_bn2.conv.weight", cout, cout, 1)
            + _bn(f"{public}.bn2", bn2 or f"{ours}.conv_bn2.bn", cout))


def _spottune_net_entries(num_classes: int) -> list:
    """The net onto a DomainBranch. A frozen block (`blocks`) keeps the domain's BNs
    (`frozen_norms`); its convolutions, under `frozen.{index}`, are checked against the
    backbone, not stored. The fine-tuned copies (`parallel_blocks`) are `tuned_blocks`."""
    entries = _spottune_stem_and_head("stem", "head_bn", "classifier", num_classes)
    for stage, block, index, cin, cout, stride in _blocks((4, 4, 4)):
        entries += _spottune_block(f"blocks.{stage}.{block}", f"frozen.{index}", cin, cout, stride,
                                   f"frozen_norms.{index}.0", f"frozen_norms.{index}.1")
        entries += _spottune_block(f"parallel_blocks.{stage}.{block}", f"tuned_blocks.{index}", cin, cout, stride)
    return entries


def _agent_entries() -> list:
    """The agent onto a PolicyNet: a [1, 1, 1] trunk and 24 outputs."""
    entries = _spottune_stem_and_head("policy.trunk.stem", "policy.trunk.head_bn", "policy.head.linear",
                                      POLICY_OUTPUTS)
    for stage, block, index, cin, cout, stride in _blocks((1, 1, 1)):
        entries += _spottune_block(f"blocks.{stage}.{block}", f"policy.trunk.blocks.{index}", cin, cout, stride)
    return entries


def _net(obj, entry: str, path, expected_class: str) -> tuple[dict, dict]:
    """(tensors, modules) of `obj[entry]`, unwrapped from DataParallel."""
    if not isinstance(obj, dict) or entry not in obj:
        found = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: no {entry!r} entry (found {found}); expected "
                              f"torch.save({{'{entry}': <the network>, ...}}) of the public code")
    net = obj[entry]
    if isinstance(net, PickledModule) and net.class_name == DATA_PARALLEL:
        children = net.attribute("_modules")
        net = children.get("module") if isinstance(children, dict) else None
    if not isinstance(net, PickledModule) or net.class_name != expected_class:
        what = net.class_name if isinstance(net, PickledModule) else type(net).__name__
        raise CheckpointError(f"{path}: {entry!r} is a {what}, expected a {expected_class}")
    return module_tensors(net, path)


def _differs(got, want) -> bool:
    if isinstance(want, tuple):
        return not isinstance(got, (tuple, list)) or tuple(got) != want
    return not isinstance(got, (int, float)) or abs(got - want) > 1e-9


def _take(tensors: dict, modules: dict, entries: list, path, what: str) -> dict:
    """Our state dict from the public tensors, checking every key, shape and module."""
    state = {}
    for public, ours, shape, checks in entries:
        value = tensors.get(public)
        if value is None and public.endswith(".num_batches_tracked"):
            value = torch.zeros((), dtype=torch.long)   # a BN of PyTorch < 0.4.1
        elif value is None:
            raise CheckpointError(f"{path}: {what} has no tensor {public!r} (the ResNet-26 layout needs it)")
        elif tuple(value.shape) != shape:
            raise CheckpointError(f"{path}: {what} tensor {public!r} has shape {tuple(value.shape)}, "
                                  f"expected {shape}")
        module = modules.get(public.rsplit(".", 1)[0])
        for name, want in checks.items():
            got = module.attribute(name) if module is not None else None
            if got is not None and _differs(got, want):
                raise CheckpointError(f"{path}: {what} module {public.rsplit('.', 1)[0]!r} has {name}={got}, "
                                      f"expected {want}")
        state[ours] = value.clone()
    return state


def _refuse_extra(tensors: dict, entries: list, path, what: str, ignored: str | None = None) -> None:
    used = {public for public, *_ in entries}
    extra = [key for key in tensors if key not in used and not (ignored and key.startswith(ignored))]
    if extra:
        raise CheckpointError(f"{path}: {what} has {len(extra)} tensors the ResNet-26 layout lacks, "
                              f"first {extra[0]!r}: another architecture")


def public_backbone_state(path) -> tuple[dict, dict]:
    """(state dict of our resnet26(1000, width=1), {'acc', 'epoch'} as recorded) of the
    residual-adapter authors' pretrained ResNet-26 file."""
    obj = read_legacy_torch(path, PUBLIC_CLASSES)
    if isinstance(obj, dict) and "agent" in obj:
        raise CheckpointError(f"{path}: a SpotTune checkpoint ('net' and 'agent'), not the pretrained "
                              f"ResNet-26: import it with `decathlon import-spottune`")
    tensors, modules = _net(obj, "net", path, "models.ResNet")
    for marker, kind in ADAPTER_MARKERS.items():
        if any(marker in key for key in tensors):
            raise CheckpointError(f"{path}: {kind}, not the plain pretrained ResNet-26 that import-backbone takes")
    entries = _backbone_entries()
    state = _take(tensors, modules, entries, path, "'net'")
    _refuse_extra(tensors, entries, path, "'net'")
    return state, {key: obj[key] for key in ("acc", "epoch") if isinstance(obj.get(key), (int, float))}


def public_spottune_state(path, domain: str, backbone_state: dict) -> dict:
    """SpotTune's per-domain checkpoint as `SpotTuneNet.domain_state_dict(domain)` of a
    per-domain-policy SpotTuneNet on the ResNet-26 (width 1) whose state is `backbone_state`."""
    if domain not in DOMAINS:
        raise CheckpointError(f"domain {domain!r}: expected one of {', '.join(DOMAINS)}")
    obj = read_legacy_torch(path, PUBLIC_CLASSES)
    net_tensors, net_modules = _net(obj, "net", path, "spottune_models.ResNet")
    agent_tensors, agent_modules = _net(obj, "agent", path, "agent_net.ResNet")
    linear = net_tensors.get("linear.weight")
    num_classes = linear.shape[0] if linear is not None and linear.dim() == 2 else None
    if num_classes != DOMAINS[domain].num_classes:
        raise CheckpointError(f"{path}: its classifier 'linear.weight' has {num_classes} classes, domain "
                              f"{domain!r} has {DOMAINS[domain].num_classes} (decathlon/data/domains.py): "
                              f"the checkpoint of another domain?")
    net_entries, agent_entries = _spottune_net_entries(num_classes), _agent_entries()
    state = _take(net_tensors, net_modules, net_entries, path, "'net'")
    _refuse_extra(net_tensors, net_entries, path, "'net'")
    state.update(_take(agent_tensors, agent_modules, agent_entries, path, "'agent'"))
    _refuse_extra(agent_tensors, agent_entries, path, "'agent'", ignored="parallel_blocks.")  # never used
    for public, ours, *_ in net_entries:
        if ours.startswith("frozen."):
            pretrained = "blocks." + ours.removeprefix("frozen.")
            if not torch.equal(state.pop(ours).float(), backbone_state[pretrained]):
                raise CheckpointError(f"{path}: frozen block {ours.split('.')[1]} ('net' {public!r}) differs from "
                                      f"the backbone's {pretrained!r}: this net was trained from another backbone")
    backbone = resnet26(backbone_state["classifier.weight"].shape[0])
    backbone.load_state_dict(backbone_state)
    net = SpotTuneNet(backbone, "per_domain", temperature=GUMBEL_TEMPERATURE)
    branch = net.add_domain(domain, num_classes)
    branch.load_state_dict({**state, "_extra_state": branch.get_extra_state()})
    return net.domain_state_dict(domain)
