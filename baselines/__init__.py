"""Published Visual Decathlon test results (docs/reference.md, section 2) as a table.

`published_test.csv` holds one row per method: `params_x_resnet26` (model size as a
multiple of one ResNet-26), the ten test accuracies in percent under the official
domain folder names (paper column order), the published score `S` and a `note`
(SpotTune's row is a recollection, see there). The Finetune row is the baseline of S.
"""
from __future__ import annotations

import functools
from importlib import resources

import pandas as pd

from decathlon.data import PAPER_ORDER

BASELINE_METHOD = "Finetune"
_CSV_NAME = "published_test.csv"


@functools.lru_cache(maxsize=1)
def _read_table() -> pd.DataFrame:
    with resources.files(__name__).joinpath(_CSV_NAME).open("r", encoding="utf-8") as file:
        table = pd.read_csv(file, keep_default_na=False)  # empty notes stay ""
    missing = [d for d in PAPER_ORDER if d not in table.columns]
    if missing:
        raise RuntimeError(f"{_CSV_NAME}: missing domain columns {missing}")
    return table


def published_results() -> pd.DataFrame:
    """The published table: one row per method, accuracies in percent (a copy)."""
    return _read_table().copy()


def published_accuracies(method: str) -> dict:
    """{domain folder name: test accuracy as a fraction} for one method (case-insensitive)."""
    table = _read_table()
    rows = table[table["method"].str.lower() == method.lower()]
    if rows.empty:
        raise KeyError(f"no published row for method {method!r}; "
                       f"methods: {', '.join(table['method'])}")
    row = rows.iloc[0]
    return {domain: float(row[domain]) / 100.0 for domain in PAPER_ORDER}
