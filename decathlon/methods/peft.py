"""Parameter-efficient methods over any backbone (docs/reference_peft.md): BitFit and LoRA
on any backbone arch (ResNet-26 or timm), VPT and AdaptFormer on timm ViTs.

Each trains its own small set of tensors and a new classifier over the frozen backbone; #par
counts exactly those (the default `stored_parameters`: every trainable parameter), and the
domain ships them as `peft_domain.pt` (`exports`). Frozen BatchNorm layers stay in eval mode
in training (`FrozenStatistics`), so their running statistics are the backbone's and nothing
frozen moves; LoRA with `train_norms` trains them as bn_adapt does and ships their statistics.
"""
from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from decathlon.jobdir import PEFT_DOMAIN_FILE
from decathlon.methods.base import Method, new_backbone
from decathlon.methods.plain import unfreeze_norms
from decathlon.models.peft import PromptedViT, add_adapters, add_lora

class FrozenStatistics(nn.Module):
    """`net` with every BatchNorm layer in eval mode, training or not."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def classifier(self) -> nn.Module:
        return self.net.classifier

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.net.modules():
            if isinstance(module, _BatchNorm):
                module.eval()
        return self

    def forward(self, x):
        return self.net(x)


class _Peft(Method):
    """What the four share: the export of what the domain trained."""

    def stored_state(self) -> dict:
        """The trained tensors (and the statistics of BN layers that adapt), on the CPU."""
        state = {name: p.detach().cpu() for name, p in self.net.named_parameters() if p.requires_grad}
        for name, module in self.net.named_modules():
            if isinstance(module, _BatchNorm) and module.weight is not None and module.weight.requires_grad:
                state.update({f"{name}.{key}": buffer.detach().cpu() for key, buffer in module.named_buffers()})
        return state

    def exports(self) -> dict:
        """What the domain ships beside the backbone: its trained tensors by network key."""
        return {PEFT_DOMAIN_FILE: {"format": 1, "method": self.name, "state": self.stored_state()}}


class BitFit(_Peft):
    """Ben Zaken et al. 2022: only the bias terms (every parameter named `bias`: of linear
    and convolution layers, and the shift beta of BatchNorm / LayerNorm) and the classifier
    train. On the BN CNNs (ResNet-26, timm ResNets) that is the BN betas (their convolutions
    have no bias) with the BN statistics kept as the backbone's; on a ViT every linear,
    LayerNorm and patch-embedding bias."""
    name = "bitfit"
    backbones = "any"

    def build(self, backbone_state):
        net = new_backbone(self.hparams, self.num_classes, backbone_state)
        for key, parameter in net.named_parameters():
            parameter.requires_grad_(key.endswith("bias") or key.startswith("classifier."))
        return FrozenStatistics(net)


class LoRA(_Peft):
    """Hu et al. 2021: (lora_alpha / lora_rank) B A beside each frozen targeted layer
    (`lora_targets`: ViT q, k, v, proj, fc1, fc2; CNN conv1x1, conv3x3); A, B and the
    classifier train, and with `train_norms` the normalisation layers too."""
    name = "lora"
    backbones = "any"

    def build(self, backbone_state):
        hp = self.hparams
        net = new_backbone(hp, self.num_classes, backbone_state).requires_grad_(False)
        add_lora(net, hp["lora_targets"], hp["lora_rank"], hp["lora_alpha"], hp["lora_dropout"])
        net.classifier.requires_grad_(True)
        if hp["train_norms"]:
            return unfreeze_norms(net)
        return FrozenStatistics(net)


class VPT(_Peft):
    """Jia et al. 2022: `vpt_tokens` prompts, 'shallow' or 'deep' (`vpt_mode`), prompt dropout
    `vpt_dropout`, over the frozen ViT; the classifier on its pooled (CLS) features."""
    name = "vpt"
    backbones = "vit"

    def build(self, backbone_state):
        hp = self.hparams
        net = new_backbone(hp, self.num_classes, backbone_state)
        return PromptedViT(net, hp["vpt_tokens"], hp["vpt_mode"], hp["vpt_dropout"])


class AdaptFormer(_Peft):
    """Chen et al. 2022: a parallel bottleneck adapter (`adapter_dim`, scale `adapter_scale`,
    dropout `adapter_dropout`, input `adapter_input`) beside each frozen ViT block's MLP."""
    name = "adaptformer"
    backbones = "vit"

    def build(self, backbone_state):
        hp = self.hparams
        net = new_backbone(hp, self.num_classes, backbone_state)
        add_adapters(net.body, hp["adapter_dim"], hp["adapter_scale"], hp["adapter_dropout"], hp["adapter_input"])
        return net
