"""Shared fixtures: small generated datasets in temporary folders (never the committed one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from respine_nb import config, io, synthetic

REFERENCE_COHORT = Path(__file__).parent / "data" / "cohort_v1"


@pytest.fixture(scope="session")
def default_tables():
    """The reference cohort (tests/data/cohort_v1: the first synthetic cohort, frozen), validated.

    Reference values from R were computed on it; the committed default cohort may change with the
    generator without invalidating them.
    """
    return io.load_dataset(REFERENCE_COHORT).tables


@pytest.fixture(scope="session")
def small_dataset_dir(tmp_path_factory) -> Path:
    """A small valid dataset (seed 11, 20 + 20 participants) written as contract CSVs."""
    folder = tmp_path_factory.mktemp("small")
    io.write_dataset(synthetic.generate(11, 20, 20), folder)
    return folder


@pytest.fixture
def dataset_copy(tmp_path) -> Path:
    """A fresh writable copy of the committed synthetic dataset, to break in a test."""
    dst = tmp_path / "ds"
    shutil.copytree(config.SYNTHETIC_DIR, dst)
    return dst
