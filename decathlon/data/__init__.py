"""Prepared data and its facts: the domain registry, annotations, the shard manifest and
the checks of shards against it, the shard loader and the batched augmentation."""
from decathlon.data.annotations import AnnotationError, SplitAnnotations, parse_annotations, read_labelled_annotations
from decathlon.data.domains import (DOMAIN_NAMES, DOMAINS, PAPER_ORDER, SOURCE_DOMAIN, SPLITS, TARGET_DOMAINS, Domain,
                                    domain_of_id, get_domain, parse_domains)
from decathlon.data.loader import ShardLoader
from decathlon.data.manifest import (FORMAT_VERSION, MANIFEST_NAME, ManifestError, ManifestVersionError, read_manifest,
                                     split_entry)
from decathlon.data.shard_checks import label_and_id_problems, verify_split_shards
from decathlon.data.shard_files import ShardError
from decathlon.data.transforms import CROP_ROUNDINGS, augmentation_spec, make_batch_transform, output_hw

__all__ = ["AnnotationError", "CROP_ROUNDINGS", "DOMAINS", "DOMAIN_NAMES", "Domain", "FORMAT_VERSION", "MANIFEST_NAME",
           "ManifestError", "ManifestVersionError", "PAPER_ORDER", "SOURCE_DOMAIN", "SPLITS", "ShardError",
           "ShardLoader", "SplitAnnotations", "TARGET_DOMAINS", "augmentation_spec", "domain_of_id", "get_domain",
           "label_and_id_problems", "make_batch_transform", "output_hw", "parse_annotations", "parse_domains",
           "read_labelled_annotations", "read_manifest", "split_entry", "verify_split_shards"]
