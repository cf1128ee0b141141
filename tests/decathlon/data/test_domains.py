import pytest

from decathlon.data.domains import TOTAL_TEST_IMAGES
from decathlon.data import DOMAINS, PAPER_ORDER, domain_of_id, get_domain, parse_domains


def test_registry_matches_the_benchmark():
    assert len(DOMAINS) == 10
    assert sorted(d.index for d in DOMAINS.values()) == list(range(1, 11))
    assert TOTAL_TEST_IMAGES == 139_760
    assert set(PAPER_ORDER) == set(DOMAINS)
    assert get_domain("daimlerpedcls").image_hw == (144, 72)  # 72 wide, 144 high
    assert {name for name, d in DOMAINS.items() if d.image_hw == (72, 72)} == {"cifar100", "omniglot", "svhn", "ucf101"}
    assert {name for name, d in DOMAINS.items() if d.image_hw is None} == {"aircraft", "dtd", "gtsrb", "imagenet12",
                                                                         "vgg-flowers"}
    assert get_domain("omniglot").num_classes == 1623


def test_id_helpers_round_trip():
    aircraft = get_domain("aircraft")
    assert aircraft.category_id_of(10) == 10000011
    assert aircraft.label_of(10000011) == 10
    assert domain_of_id(100202041).name == "vgg-flowers"
    with pytest.raises(KeyError, match="domain index"):
        domain_of_id(110000001)


def test_unknown_domain_names_the_valid_ones():
    with pytest.raises(KeyError, match="valid domains: aircraft"):
        get_domain("mnist")
    with pytest.raises(KeyError, match="mnist"):
        parse_domains("svhn,mnist")
    assert parse_domains(None) == tuple(DOMAINS)
    assert parse_domains("svhn, dtd") == ("svhn", "dtd")
