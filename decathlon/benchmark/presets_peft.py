"""The hyperparameter blocks of the parameter-efficient methods (docs/reference_peft.md).

Each value is the paper's or its public code's where they state one, else marked as ours.
The optimiser and schedule are the preset's (SGD with momentum, as every method here).
"""
from __future__ import annotations

BITFIT_METHOD = {}

# LoRA paper, section 4.1: alpha is set to the first r tried and not tuned (scale 1); section
# 7.1: adapting W_q and W_v is the recommended default (the suite records `lora_targets`; on a
# CNN the paper has no layer to follow, so every 1x1 and 3x3 convolution is ours). Rank 8: the
# paper's RoBERTa / DeBERTa runs. Dropout 0 and frozen norms (`train_norms`): ours.
LORA_METHOD = dict(lora_rank=8, lora_alpha=8.0, lora_dropout=0.0, lora_targets=["q", "v", "conv1x1", "conv3x3"],
                   train_norms=False)

# KMnP/vpt: 5 tokens (src/configs/config.py, NUM_TOKENS), prompt dropout 0.1 (its demo
# notebook's runs; the config's default is 0.0); 'deep' is the paper's main variant.
VPT_METHOD = dict(vpt_tokens=5, vpt_mode="deep", vpt_dropout=0.1)

# ShoufaChen/AdaptFormer main_image.py: ffn_num 64, scalar 0.1, adapter dropout 0.1
# (custom_modules.py), layer norm option "none": the adapter reads the block's MLP input x'.
ADAPTFORMER_METHOD = dict(adapter_dim=64, adapter_scale=0.1, adapter_dropout=0.1, adapter_input="block")

PEFT_METHODS = {"bitfit": BITFIT_METHOD, "lora": LORA_METHOD, "vpt": VPT_METHOD, "adaptformer": ADAPTFORMER_METHOD}
