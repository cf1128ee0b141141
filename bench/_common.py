"""Helpers the benchmark scripts share: device sync, a seeded backbone, a fixed SpotTune
policy, a training step without host synchronisation (and its CUDA graph), and a
description of the machine a figure was measured on."""
from __future__ import annotations

import datetime
import json
import os
import platform
import re
from pathlib import Path

import torch

from decathlon.models import resnet26


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def backbone_state(width: float) -> dict:
    """A seeded random ResNet-26 state: what a method starts from (its values do not matter)."""
    torch.manual_seed(0)
    return resnet26(1, width).state_dict()


class FixedDecisions:
    """Stands in for ``SpotTuneNet.decisions``: the same (N, blocks) matrix every call.

    With ``policy`` (the net's own ``decisions``), the policy runs first and its decisions
    are discarded, so a timing includes the policy network's cost."""

    def __init__(self, matrix: torch.Tensor, policy=None):
        self.matrix = matrix
        self.policy = policy

    def __call__(self, x, domain, mode, policy_logits=None):
        if self.policy is not None:
            self.policy(x, domain, mode)
        return self.matrix


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict:
    """Date, versions, CPU and (on CUDA) GPU of this run."""
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "device": str(device), "cpu_name": cpu_name()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu_name=torch.cuda.get_device_name(device), gpu_memory_gib=props.total_memory / 2**30,
                    capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    else:
        info["gpu_name"] = "none (CPU run)"
    info["device_name"] = info["gpu_name"] if device.type == "cuda" else info["cpu_name"]
    if hasattr(os, "getloadavg"):
        info["load_average_1m_before"] = os.getloadavg()[0]
    return info


def write_report(report: dict, out: Path, markdown) -> Path:
    """`out` (.json) and its .md page beside it; prints the page. Returns the json path."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return out
