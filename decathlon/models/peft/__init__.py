"""Parameter-efficient modules over a frozen backbone (docs/reference_peft.md): LoRA layers
(`lora`), visual prompts for timm ViTs (`vpt`) and AdaptFormer's parallel adapters (`adaptformer`)."""
from decathlon.models.peft.adaptformer import ADAPTER_INPUTS, AdaptedBlock, Adapter, add_adapters
from decathlon.models.peft.lora import (LORA_LAYERS, LORA_TARGETS, LoRAConv2d, LoRALinear, add_lora,
                                        merge_lora)
from decathlon.models.peft.vpt import VPT_MODES, PromptedViT

__all__ = ["ADAPTER_INPUTS", "AdaptedBlock", "Adapter", "LORA_LAYERS", "LORA_TARGETS", "LoRAConv2d",
           "LoRALinear", "PromptedViT", "VPT_MODES", "add_adapters", "add_lora", "merge_lora"]
