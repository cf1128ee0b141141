"""Score a results.json against labelled annotations: accuracy and S per domain.

Reads the labelled <domain>_<split>.json files from a folder or zip (the public
labels_test.zip for the test split), checks every entry of RESULTS as the evaluation
server would, and prints top-1 accuracy (%) and S points per domain in paper order.
Domains without predictions are listed as missing and not scored; unpredicted images
of a scored domain count as wrong. Exit code 2 on a bad results or annotation file:
RESULTS must hold one flat JSON list no larger than a full submission needs (a zip's
member is size-checked before and while it is inflated).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from decathlon.data import AnnotationError, SPLITS, get_domain
from decathlon.resources import labels_test_zip
from decathlon.scoring import Evaluation, ResultsError, evaluate, read_baseline_errors, validate_results

PROG = "decathlon score"


def add_arguments(parser) -> None:
    parser.add_argument("results", type=Path, help="results.json, or a zip holding it")
    parser.add_argument("--annotations", type=Path,
                        help="folder or zip of labelled <domain>_<split>.json files (default for the test "
                             "split: the public labels_test.zip this package ships)")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to score (default: test)")
    parser.add_argument("--baseline-errors", type=Path, metavar="JSON",
                        help="{domain: error fraction} of our own baseline, scored against instead of "
                             "the published Finetune test row (gives S on other splits)")
    parser.add_argument("--strict", action="store_true",
                        help="fail unless every labelled image is predicted exactly once")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args) -> int:
    if args.annotations is None and args.split != "test":
        print(f"{PROG}: error: --annotations is needed for the {args.split} split (the package ships "
              "labels for the test split only)", file=sys.stderr)
        return 2
    try:
        if args.annotations is None:
            args.annotations = labels_test_zip()  # a damaged packaged copy: one line, below
        validate_results(args.results)  # entry errors surface before the slow annotation read
        baseline_errors = read_baseline_errors(args.baseline_errors) if args.baseline_errors else None
        evaluation = evaluate(args.results, args.annotations, args.split, baseline_errors,
                              require_full=args.strict)
    except (ResultsError, AnnotationError, ValueError, OSError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(as_json(evaluation, args), indent=2) if args.json else as_text(evaluation, args))
    return 0


def _missing_domains(evaluation: Evaluation) -> tuple:
    score = evaluation.score
    return score.missing if score is not None else evaluation.results.missing_domains


def as_json(evaluation: Evaluation, args) -> dict:
    """Plain JSON types; accuracy as a fraction, None where a domain has no predictions."""
    def plain(value):
        return None if isinstance(value, float) and math.isnan(value) else value

    domains = {name: {key: plain(value.item() if hasattr(value, "item") else value)
                      for key, value in row.items()}
               for name, row in evaluation.table.to_dict(orient="index").items()}
    score = evaluation.score
    return {"results": str(args.results), "annotations": str(args.annotations),
            "split": evaluation.split, "baseline": score.baseline if score is not None else None,
            "domains": domains, "total": score.total if score is not None else None,
            "missing_domains": list(_missing_domains(evaluation)),
            "complete": evaluation.results.complete}


def as_text(evaluation: Evaluation, args) -> str:
    table = evaluation.table.copy()
    table.insert(0, "short", [get_domain(name).short for name in table.index])
    table["accuracy %"] = table.pop("accuracy") * 100
    table["S points"] = table.pop("points")
    formats = {"accuracy %": "{:.2f}".format, "S points": "{:.1f}".format}
    lines = [f"results:     {args.results} ({len(evaluation.results.image_ids):,} entries)",
             f"annotations: {args.annotations} (split {evaluation.split})",
             "", table.to_string(formatters=formats, na_rep="-"), ""]
    score = evaluation.score
    if score is not None:
        lines.append(f"S = {score.total:.1f} / {score.max_total:.0f} over {len(score.per_domain)} "
                     f"domain(s) (baseline: {score.baseline})")
    else:
        lines.append(f"S not computed: no baseline for the {evaluation.split} split (see --baseline-errors)")
    missing = _missing_domains(evaluation)
    lines.append(f"missing domains (not scored): {', '.join(missing) if missing else 'none'}")
    partial = table[(table["predicted"] > 0) & (table["predicted"] < table["images"])]
    for name, row in partial.iterrows():
        lines.append(f"partial: {name} has {row['predicted']:,} of {row['images']:,} images predicted "
                     "(the rest count as wrong)")
    return "\n".join(lines)
