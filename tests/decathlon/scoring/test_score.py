"""The score S on hand-computed cases and on the published table (docs/reference.md, section 2)."""
import pytest

from baselines import BASELINE_METHOD, published_accuracies, published_results
from decathlon.data import DOMAIN_NAMES, PAPER_ORDER
from decathlon.scoring import CUSTOM_BASELINE, PUBLISHED_BASELINE, SScore, domain_points, s_score

FINETUNE = published_accuracies(BASELINE_METHOD)


def test_published_table_has_every_domain_and_marks_spottune_as_recollection():
    table = published_results()
    assert list(table.columns[2:12]) == list(PAPER_ORDER)
    assert len(table) == 6
    spottune = table[table["method"] == "SpotTune (2019)"].iloc[0]
    assert "recollection" in spottune["note"]
    assert FINETUNE["aircraft"] == pytest.approx(0.6034)


def test_unknown_published_method_lists_the_valid_ones():
    with pytest.raises(KeyError, match="Scratch"):
        published_accuracies("ResNet-9000")


def test_matching_the_baseline_earns_250_per_domain():
    score = s_score(FINETUNE)
    assert isinstance(score, SScore)
    assert score.total == 2500.0
    assert set(score.per_domain.values()) == {250.0}
    assert score.missing == () and score.baseline == PUBLISHED_BASELINE


def test_zero_error_earns_1000_and_twice_the_baseline_error_earns_0():
    perfect = s_score({d: 1.0 for d in DOMAIN_NAMES})
    assert perfect.total == 10_000.0
    twice = {d: 1.0 - 2 * (1.0 - a) for d, a in FINETUNE.items()}
    worse = {d: max(0.0, 1.0 - 3 * (1.0 - a)) for d, a in FINETUNE.items()}
    assert s_score(twice).total == pytest.approx(0.0, abs=1e-9)
    assert s_score(worse).total == 0.0


def test_two_domain_custom_baseline_worked_by_hand():
    # dtd: Emax = 0.8, alpha = 1000/0.64, (0.8 - 0.3)^2 * 1562.5 = 390.625
    # svhn: Emax = 0.2, alpha = 1000/0.04, (0.2 - 0.05)^2 * 25000 = 562.5
    score = s_score({"dtd": 0.7, "svhn": 0.95}, baseline_errors={"dtd": 0.4, "svhn": 0.1})
    assert score.per_domain == pytest.approx({"dtd": 390.625, "svhn": 562.5})
    assert score.total == pytest.approx(953.125)
    assert score.baseline == CUSTOM_BASELINE and score.missing == ()
    as_accuracies = s_score({"dtd": 0.7, "svhn": 0.95}, baseline={"dtd": 0.6, "svhn": 0.9})
    assert as_accuracies.total == pytest.approx(953.125)


def test_zero_baseline_error_scores_1000_only_at_zero_error():
    assert domain_points(0.0, 0.0) == 1000.0
    assert domain_points(0.01, 0.0) == 0.0
    assert s_score({"dtd": 1.0}, baseline_errors={"dtd": 0.0}).total == 1000.0


def test_missing_domains_are_reported_not_counted():
    score = s_score({"aircraft": FINETUNE["aircraft"], "svhn": 1.0})
    assert score.total == 1250.0
    assert list(score.per_domain) == ["aircraft", "svhn"]
    assert score.missing == tuple(d for d in PAPER_ORDER if d not in ("aircraft", "svhn"))
    text = str(score)
    assert "1250.0 / 2000" in text and "missing" in text and "imagenet12" in text


@pytest.mark.parametrize("method", published_results()["method"])
def test_published_rows_recompute_close_to_their_published_score(method):
    table = published_results().set_index("method")
    assert s_score(published_accuracies(method)).total == pytest.approx(table.loc[method, "S"], abs=30)


@pytest.mark.parametrize("acc, message", [
    ({"cifar-100": 0.5}, "unknown domain.*'cifar-100'"),
    ({"dtd": 55.53}, "dtd=55.53.*percentages"),
    ({"dtd": -0.1}, "dtd=-0.1"),
    ({"dtd": float("nan")}, "dtd=nan"),
    ({"dtd": "0.5"}, "dtd='0.5'"),
    ({"dtd": True}, "dtd=True"),
])
def test_bad_accuracies_raise_naming_them(acc, message):
    with pytest.raises(ValueError, match=message):
        s_score(acc)


def test_bad_baselines_raise():
    with pytest.raises(ValueError, match="no baseline error for domain.*svhn"):
        s_score({"dtd": 0.5, "svhn": 0.5}, baseline_errors={"dtd": 0.4})
    with pytest.raises(ValueError, match="not both"):
        s_score({"dtd": 0.5}, baseline={"dtd": 0.5}, baseline_errors={"dtd": 0.5})
    with pytest.raises(ValueError, match="baseline error.*dtd=40"):
        s_score({"dtd": 0.5}, baseline_errors={"dtd": 40})
