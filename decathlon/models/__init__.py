"""Networks of the suite: ResNet-26 (plain, series / parallel adapters), timm backbones, SpotTune
(on ResNet-26, and over the residual blocks of a timm backbone)."""
from decathlon.models.policy import (DECISION_MODES, FORWARD_MODES, GUMBEL_TEMPERATURE, GlobalPolicy,
                                     PolicyHead, PolicyNet, budget_loss, decide,
                                     policy_trunk)
from decathlon.models.resnet import (ADAPTER_KINDS, BasicBlock, ConvBN, ResNet,
                                     SeriesAdapter, ZeroPadShortcut, adapter_weight_count,
                                     conv3x3_weight_count, freeze_shared_convs, resnet26,
                                     split_shared_and_domain_parameters)
from decathlon.models.backbones import (RESNET26, TimmNet, build_network, check_arch, check_backbone_settings,
                                        is_timm, is_vit, network_of, reference_parameter_count, timm_body)
from decathlon.models.domain_branch import DomainBranch, parameter_count
from decathlon.models.compiled_tail import TAILS
from decathlon.models.spottune import POLICY_KINDS, SpotTuneNet
from decathlon.models.spottune_blocks import ResidualBody, residual_body
from decathlon.models.spottune_blocks_net import BLOCK_POLICY_KINDS, BlockDomain, BlockSpotTuneNet

__all__ = [
    "RESNET26", "TimmNet", "build_network", "check_arch", "check_backbone_settings", "is_timm", "is_vit",
    "network_of", "reference_parameter_count", "timm_body",
    "BLOCK_POLICY_KINDS", "BlockDomain", "BlockSpotTuneNet", "ResidualBody", "residual_body",
    "ADAPTER_KINDS", "BasicBlock", "ConvBN", "DECISION_MODES", "DomainBranch",
    "FORWARD_MODES", "GUMBEL_TEMPERATURE", "GlobalPolicy", "POLICY_KINDS",
    "PolicyHead", "PolicyNet", "ResNet", "SeriesAdapter", "SpotTuneNet", "TAILS", "ZeroPadShortcut",
    "adapter_weight_count", "budget_loss", "conv3x3_weight_count", "decide",
    "freeze_shared_convs", "parameter_count", "policy_trunk", "resnet26",
    "split_shared_and_domain_parameters",
]
