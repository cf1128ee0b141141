"""bench_models.py's page: the report as a markdown table (models_<device>.md)."""
from __future__ import annotations

import _compiled_tail


def markdown(report: dict) -> str:
    m, c = report["machine"], report["config"]
    options = ", ".join(k for k in ("bf16", "channels_last", "graphs") if c[k]) or "float32"
    lines = [f"# Model benchmark ({m['device']})", "",
             f"{m['date']}; {m['device_name']}; torch {m['torch']}; {m['cpu_count']} CPUs, "
             f"{m['torch_threads']} torch threads; load average (1 min) "
             f"{m.get('load_average_1m_before', float('nan')):.2f} before, "
             f"{m.get('load_average_1m_after', float('nan')):.2f} after.", "",
             f"ResNet-26 width {c['width']}, batch {c['batch']} of 3x{c['size']}x{c['size']}, {options}; "
             f"{c['warmup']} warm-up calls, then {c['rounds']} alternating rounds of {c['steps']} "
             f"timed call(s) per side; medians, ratio of the medians (per-round median ratio in brackets).", "",
             "| comparison | baseline (ms) | method (ms) | ratio | target | |",
             "|---|---:|---:|---:|---:|---|"]
    t, i = report.get("training"), report.get("inference")
    if t:
        lines.append(f"| training step: spottune / finetune | {t['finetune']['median_ms']:.1f} | "
                     f"{t['spottune']['median_ms']:.1f} | {t['ratio']:.2f}x ({t['ratio_per_round_median']:.2f}x) | <= {t['target']}x | {t['verdict']} |")
        lines.append(f"| training step: spottune_unfused / finetune | {t['finetune']['median_ms']:.1f} | "
                     f"{t['spottune_unfused']['median_ms']:.1f} | {t['other_ratios']['spottune_unfused']:.2f}x | | |")
        tail_rows, tail_note = _compiled_tail.markdown_rows(t)
        lines += tail_rows
        for other in ("piggyback", "taps", "nettailor"):
            lines.append(f"| training step: {other} / finetune | {t['finetune']['median_ms']:.1f} | "
                         f"{t[other]['median_ms']:.1f} | {t['other_ratios'][other]:.2f}x | | |")
    if i:
        other = next(name for name in i["other_ratios"])
        lines.append(f"| inference: routed ({i['routed_implementation']}) / dense, {100 * i['fraction_tuned']:.0f}% tuned, "
                     f"policy included; routed=None picks {i['auto_picks']} | "
                     f"{i['dense']['median_ms']:.1f} | {i['routed']['median_ms']:.1f} | "
                     f"{i['ratio']:.2f}x ({i['ratio_per_round_median']:.2f}x) | <= {i['target']}x | {i['verdict']} |")
        lines.append(f"| inference: {other} / dense | {i['dense']['median_ms']:.1f} | {i[other]['median_ms']:.1f} | "
                     f"{i['other_ratios'][other]:.2f}x | | |")
    if t:
        lines += ["", tail_note]
    return "\n".join(lines) + "\n"
