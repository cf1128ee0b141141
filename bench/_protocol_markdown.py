"""The page bench_protocol.py writes beside its JSON report."""
from __future__ import annotations

from decathlon.data import SOURCE_DOMAIN
from _protocol_projection import FAMILY


def _rate_row(label: str, row: dict) -> str:
    return f"| {label} | {row['train_images_per_s']:,.0f} | {row['eval_images_per_s'] or 0:,.0f} | {row['step']} |"


def _measured(report: dict) -> list:
    s, cpu = report["settings"], report["machine"]["device"] == "cpu"
    lines = ["## Measured (record.jsonl, median of the epochs after the first)", "",
             "| job | train img/s | eval img/s | step |", "|---|---:|---:|---|",
             _rate_row(f"pretrain (batch {s['pretrain_batch']})", report["pretrain"])]
    lines += [_rate_row(f"{key} (batch {s['batch']})", row) for key, row in report["single"].items()]
    heuristics = report["cudnn_heuristics"]
    lines += [_rate_row(f"{row['job']} (batch {s['batch']}), --no-cudnn-benchmark", row) for row in heuristics.values()]
    for method, row in heuristics.items():
        autotuned = report["single"][row["job"]]["train_images_per_s"]
        lines += ["", f"{method}: training img/s with cuDNN autotuning (the engine's default) over cuDNN's heuristics: "
                      f"**{autotuned / row['train_images_per_s']:.2f}x**" + (" (a CPU has no cuDNN: noise)" if cpu else "")]
    streamed, ceiling = report["streamed_source"], report["ceiling"].get("finetune")
    lines += ["", f"{SOURCE_DOMAIN} train streamed from its shards (reader thread, no training), batch "
                  f"{streamed['batch']}: {streamed['images_per_s']:,.0f} img/s, "
                  f"**{streamed['images_per_s'] / report['pretrain']['train_images_per_s']:.2f}x** the pretraining "
                  f"job's rate, {streamed['images_per_s'] / ceiling['images_per_s']:.2f}x the finetune ceiling."]
    return lines


def _concurrency(report: dict) -> list:
    lines = ["## Several jobs at once", "",
             "| jobs at once | method | img/s together | over one job | device ceiling, img/s | ceiling over one job |",
             "|---:|---|---:|---:|---:|---:|"]
    for method, row in report["concurrent"].items():
        alone = row["jobs"] == 1   # nothing shared the device
        together = "" if alone else f"{row['summed_images_per_s']:,.0f}"
        over = "" if alone else f"{row['over_one_job']:.2f}x"
        lines.append(f"| {row['jobs']} | {method} | {together} | {over} | "
                     f"{report['ceiling'][method]['images_per_s']:,.0f} | {row['ceiling_over_one_job']:.2f}x |")
    ceiling = next(iter(report["ceiling"].values()))
    lines += ["", f"Device ceiling: the method's training step on one batch of {ceiling['batch']} images of "
                  f"{ceiling['size']} px already on the device ({ceiling['step']}). Jobs in separate processes share "
                  "a GPU by time slices (without CUDA MPS), so together they cannot pass it."]
    return lines


def _projections(report: dict) -> list:
    lines = ["## Projected wall time of the paper protocols on this device (hours)", "",
             "| protocol | methods | pretraining | jobs, one at a time | total | jobs, N at a time | total |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in report["projections"]:
        lines.append(f"| {row['preset']} ({row['protocol']}) | {row['methods_label']} | {row['pretrain_h']:.2f} | "
                     f"{row['jobs_h']:.2f} | **{row['total_h']:.2f}** | {row['jobs_parallel_h']:.2f} (N={row['n']}) | "
                     f"**{row['total_parallel_h']:.2f}** |")
    return lines + ["", "Method families: " + ", ".join(f"{k} as {v}" for k, v in FAMILY.items() if k != v) + "."]


def markdown(report: dict) -> str:
    m, s = report["machine"], report["settings"]
    head = [f"# Protocol benchmark: {m['device_name']}", "",
            f"{m['date']}; torch {m['torch']}; synthetic data at scale {s['scale']}, {s['epochs']} epochs per job "
            f"(the first untimed), precision {s['precision']}, ResNet-26 width {s['width']}; "
            f"{report['measure_s']:.0f} s of measuring.", ""]
    return "\n".join(head + _measured(report) + [""] + _concurrency(report) + [""] + _projections(report)) + "\n"
