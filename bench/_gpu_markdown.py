"""The markdown page of bench_gpu.py's report (results/bench/gpu_<name>.md)."""
from __future__ import annotations


def fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    lines = [f"# GPU benchmark: {m['gpu_name']}", "",
             f"{m['date']}; torch {m['torch']}" + (f", CUDA {m['cuda']}, cuDNN {m['cudnn']}" if "cuda" in m else "")
             + f"; {report['elapsed_s']:.0f} s in all.", "",
             f"ResNet-26 width {s['width']}, synthetic uint8 3x{s['size']}x{s['size']} images normalised on the "
             f"device, bf16 autocast, channels_last; medians of timed steps after {s['warmup']} warm-up steps.", "",
             "## Training (update(): forward, backward, SGD step)", "",
             "`eager`: the engine's EagerStep; `cuda graph`: its GraphedStep, the step captured whole and "
             "replayed (the engine's default on CUDA).", "",
             "| method | batch | step (ms) | images/s | peak memory (GiB) |", "|---|---:|---:|---:|---:|"]
    training = report["training"]
    for key, row in training.items():
        if key.startswith("ratio"):
            continue
        name, batch = key.rsplit("_b", 1)
        if "step_ms" in row:
            lines.append(f"| {name} | {batch} | {row['step_ms']:.1f} | {row['images_per_s']:,.0f} | "
                         f"{fmt(row['peak_memory_gib'], '.2f')} |")
        else:
            lines.append(f"| {name} | {batch} | {row.get('status')}: {row.get('error', '')} | | |")
    for key, ratio in training.items():
        if key.startswith("ratio"):
            kind, batch = key[len("ratio ("):].rsplit(")_b", 1)
            lines.append(f"\nspottune / finetune step time, {kind}, batch {batch}: **{ratio:.2f}x**")
    lines += ["", "## Inference (SpotTuneNet, half of the decisions fine-tuned, policy network included)", "",
              "| batch | dense (ms) | routed (ms) | routed / dense | routed=None picks | ResNet-26 (ms) | dense img/s "
              "| routed img/s |", "|---:|---:|---:|---:|---|---:|---:|---:|"]
    for key, row in report["inference"].items():
        if "routed" in row:
            picks = "routed" if row.get("auto_routes") else "dense"
            lines.append(f"| {key[1:]} | {row['dense']['step_ms']:.1f} | {row['routed']['step_ms']:.1f} | "
                         f"**{row['routed_over_dense']:.2f}x** | {picks} | {row['resnet26']['step_ms']:.1f} | "
                         f"{row['dense']['images_per_s']:,.0f} | {row['routed']['images_per_s']:,.0f} |")
        else:
            lines.append(f"| {key[1:]} | {row.get('status')}: {row.get('error', '')} | | | | | | |")
    if report["compile"]:
        lines += ["", "## torch.compile (finetune)", ""]
        for key, row in report["compile"].items():
            if row.get("status") == "ok":
                lines.append(f"- {key}: compile {row['compile_s']:.0f} s, then {row['step_ms']:.1f} ms/step, "
                             f"{row['images_per_s']:,.0f} images/s, peak {fmt(row['peak_memory_gib'], '.2f')} GiB"
                             + (f", {row['speedup_over_eager']:.2f}x eager" if "speedup_over_eager" in row else ""))
            else:
                lines.append(f"- {key}: {row.get('status')} {row.get('error', row.get('budget_s', ''))}")
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(report["skipped"])]
    return "\n".join(lines) + "\n"
