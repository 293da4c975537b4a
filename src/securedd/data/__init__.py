"""Datasets, sampling, partitions and augmentation."""

from securedd.data.augment import DSA, AugmentDraw, DSAParams
from securedd.data.datasets import DATASETS, dataset_spec, list_datasets, load_dataset, load_splits
from securedd.data.partition import dirichlet_partition, iid_partition
from securedd.data.root import resolve_root
from securedd.data.sampler import ClassBalancedSampler, check_ipc
from securedd.data.spec import DatasetSpec, RealData

__all__ = [
    "DATASETS",
    "DSA",
    "AugmentDraw",
    "ClassBalancedSampler",
    "DSAParams",
    "DatasetSpec",
    "RealData",
    "check_ipc",
    "dataset_spec",
    "dirichlet_partition",
    "iid_partition",
    "list_datasets",
    "load_dataset",
    "load_splits",
    "resolve_root",
]
