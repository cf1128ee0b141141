"""Predict every domain of a SpotTune model file and write the evaluation server's results.zip.

MODEL is one spottune_multidomain.pt (a spottune_joint job's, or one made with
`decathlon assemble` from per-domain or imported SpotTune jobs). Each domain it holds is
predicted from the prepared shards in DATA, routed and batched, with the augmentation it
was trained with; imagenet12 by the frozen backbone when its classifier fits. The
predictions are written as results.json (zipped if OUT ends in .zip) and checked as the
server would. Where the split has labels, top-1 accuracy per domain and S are printed
(S against the published Finetune test errors on real test data, else against
--baseline-errors). Exit code 2 on a bad model, data or argument, each in one line:
--out is checked first; a model file whose content does not fit its own `arch`, or a
domain whose classifier has another number of classes than the prepared data, is refused.
"""
from __future__ import annotations

import sys
from pathlib import Path

from decathlon.data import PAPER_ORDER, SPLITS, get_domain

PROG = "decathlon predict"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="spottune_multidomain.pt")
    parser.add_argument("--data", required=True, type=Path, help="prepared shard folder")
    parser.add_argument("--split", default="test", choices=SPLITS, help="split to predict (default: test)")
    parser.add_argument("--out", required=True, type=Path, help="results.zip (or results.json) to write")
    parser.add_argument("--policy", default="argmax", choices=("argmax", "sample"),
                        help="test-time decisions: argmax, or sample (the public code's Gumbel draws)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampled decisions (default 0)")
    parser.add_argument("--baseline-errors", type=Path, metavar="JSON",
                        help="{domain: error fraction} to score S against off the real test split")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> int:
    from decathlon.data import ManifestError, read_manifest
    from decathlon.engine.distributed import resolve_device
    from decathlon.inference import load_model, predict_model
    from decathlon.files import ensure_file_target
    from decathlon.scoring import read_baseline_errors, s_score
    from decathlon.scoring import ResultsError, official_test_ids, validate_results, write_results

    try:
        ensure_file_target(args.out, "--out")
        model = load_model(args.model)
        predictions = predict_model(model, args.data, args.split, args.policy, args.seed,
                                    resolve_device(args.device), args.batch_size, not args.no_progress)
        synthetic = read_manifest(args.data)["synthetic"]
        write_results({d: (p.image_ids, p.labels) for d, p in predictions.items()}, args.out)
        official = args.split == "test" and not synthetic
        expected = official_test_ids(list(predictions)) if official else \
            {d: p.image_ids for d, p in predictions.items()}
        checked = validate_results(args.out, expected, require_full=True)
        baseline = read_baseline_errors(args.baseline_errors) if args.baseline_errors else None
    except (ManifestError, ResultsError, ValueError, KeyError, OSError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    print(f"{args.out}: {len(checked.image_ids):,} predictions of {len(predictions)} domain(s) "
          f"({'SYNTHETIC' if synthetic else 'real'} data, split {args.split}, policy {args.policy}); "
          "checked as the evaluation server would")
    accuracies = {d: p.accuracy for d, p in predictions.items() if p.accuracy is not None}
    for domain in (d for d in PAPER_ORDER if d in accuracies):
        print(f"  {get_domain(domain).short:6s} {domain:14s} {100 * accuracies[domain]:6.2f}%")
    if accuracies:
        if official or baseline:
            score = s_score(accuracies, baseline_errors=baseline) if baseline else s_score(accuracies)
            print(f"S = {score.total:.1f} over {len(score.per_domain)} domain(s) (baseline: {score.baseline})")
        else:
            print("S: n/a (the published Finetune errors are of the real test split; pass --baseline-errors)")
    return 0
