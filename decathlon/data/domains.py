"""The ten Decathlon domains as data: ids, sizes, normalisation, image geometry.

Everything here is a fact of the benchmark (see docs/reference.md, section 1) and is the
single place the rest of the code looks them up. Splits are declared as data next to
their official sizes, VTAB style, so a test can check a prepared copy against them.
"""
from __future__ import annotations

from dataclasses import dataclass

SPLITS = ("train", "val", "test")
SPLIT_INDEX = {"train": 0, "val": 1, "test": 2}
# Annotation file per split as the devkit ships it (test labels are stripped).
ANNOTATION_FILES = {"train": "{domain}_train.json", "val": "{domain}_val.json",
                    "test": "{domain}_test_stripped.json"}
LABELLED_TEST_FILE = "{domain}_test.json"  # the public labels_test.zip release
ID_DOMAIN_FACTOR = 10**7
ID_SPLIT_FACTOR = 10**5
# The release resizes every image so that its shorter side is 72 px (a handful of aircraft
# and dtd images have 73); the shards store every image whole at exactly this shorter side.
SHORT_SIDE = 72


@dataclass(frozen=True)
class Domain:
    index: int                      # the `d` of every image and category id
    name: str                       # official folder name
    short: str                      # column header used in papers
    num_classes: int
    sizes: dict                     # official image count per split
    mean: tuple
    std: tuple
    # (height, width) shared by every released image of the domain; None where sizes vary
    # (the longer side of aircraft, dtd, gtsrb, imagenet12 and vgg-flowers images).
    image_hw: tuple | None = None

    @property
    def category_offset(self) -> int:
        """category_id = category_offset + label + 1."""
        return self.index * ID_DOMAIN_FACTOR

    def label_of(self, category_id: int) -> int:
        return category_id - self.category_offset - 1

    def category_id_of(self, label: int) -> int:
        return self.category_offset + label + 1


def _gray(value: float) -> tuple:
    return (value, value, value)


_DOMAIN_LIST = [
    Domain(1, "aircraft", "Airc", 100, {"train": 3334, "val": 3333, "test": 3333},
           (.47983, .51074, .53438), (.21070, .20509, .23730)),
    Domain(2, "cifar100", "C100", 100, {"train": 40000, "val": 10000, "test": 10000},
           (.50706, .48667, .44078), (.26745, .25647, .27608), image_hw=(72, 72)),
    Domain(3, "daimlerpedcls", "DPed", 2, {"train": 23520, "val": 5880, "test": 19600},
           _gray(.48204), _gray(.23613), image_hw=(144, 72)),
    Domain(4, "dtd", "DTD", 47, {"train": 1880, "val": 1880, "test": 1880},
           (.52696, .47025, .42397), (.25227, .24092, .24994)),
    Domain(5, "gtsrb", "GTSR", 43, {"train": 31367, "val": 7842, "test": 12630},
           (.33921, .31178, .32047), (.27560, .26576, .27090)),
    Domain(6, "imagenet12", "ImNet", 1000, {"train": 1232167, "val": 49000, "test": 48238},
           (.485, .456, .406), (.229, .224, .225)),
    Domain(7, "omniglot", "OGlt", 1623, {"train": 17853, "val": 6492, "test": 8115},
           _gray(.08100), _gray(.27047), image_hw=(72, 72)),
    Domain(8, "svhn", "SVHN", 10, {"train": 47217, "val": 26040, "test": 26032},
           (.43768, .44377, .47280), (.19803, .20102, .19704), image_hw=(72, 72)),
    Domain(9, "ucf101", "UCF", 101, {"train": 7585, "val": 1952, "test": 3783},
           (.49953, .49880, .49982), (.10899, .10810, .10680), image_hw=(72, 72)),
    Domain(10, "vgg-flowers", "Flwr", 102, {"train": 1020, "val": 1020, "test": 6149},
           (.43415, .38310, .29715), (.28510, .23842, .26396)),
]

DOMAINS = {d.name: d for d in _DOMAIN_LIST}
DOMAIN_NAMES = tuple(DOMAINS)
SOURCE_DOMAIN = "imagenet12"
TARGET_DOMAINS = tuple(n for n in DOMAIN_NAMES if n != SOURCE_DOMAIN)
# Column order of every table in the papers.
PAPER_ORDER = ("imagenet12", "aircraft", "cifar100", "daimlerpedcls", "dtd", "gtsrb",
               "vgg-flowers", "omniglot", "svhn", "ucf101")
TOTAL_TEST_IMAGES = sum(d.sizes["test"] for d in _DOMAIN_LIST)  # 139,760


def get_domain(name: str) -> Domain:
    """Look a domain up by its official folder name, with an error listing the valid ones."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise KeyError(f"unknown domain {name!r}; valid domains: {', '.join(DOMAIN_NAMES)}") from None


def domain_of_id(any_id: int) -> Domain:
    """The domain an image or category id belongs to (its leading digits are `d`)."""
    index = int(any_id) // ID_DOMAIN_FACTOR
    for domain in _DOMAIN_LIST:
        if domain.index == index:
            return domain
    raise KeyError(f"id {any_id} does not start with a domain index 1..10")


def parse_domains(spec: str | None) -> tuple:
    """'aircraft,svhn' -> ('aircraft', 'svhn'); None or 'all' -> all ten, validated."""
    if not spec or spec == "all":
        return DOMAIN_NAMES
    names = tuple(s.strip() for s in spec.split(",") if s.strip())
    for name in names:
        get_domain(name)
    return names
