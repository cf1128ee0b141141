"""The benchmark's score S (`score`) and the evaluation server's results.json (`submission`,
read back by `results_file` with a size limit)."""
from decathlon.scoring.results_file import RESULTS_MEMBER, ResultsError, read_results
from decathlon.scoring.score import (CUSTOM_BASELINE, PUBLISHED_BASELINE, SScore, domain_points,
                                     published_baseline_errors, read_baseline_errors, s_score)
from decathlon.scoring.submission import (Evaluation, ValidatedResults, evaluate, official_test_ids, results_entries,
                                          validate_results, write_results)

__all__ = ["CUSTOM_BASELINE", "Evaluation", "PUBLISHED_BASELINE", "RESULTS_MEMBER", "ResultsError", "SScore",
           "ValidatedResults", "domain_points", "evaluate", "official_test_ids", "published_baseline_errors",
           "read_baseline_errors", "read_results", "results_entries", "s_score", "validate_results", "write_results"]
