"""Shared fixtures: small generated datasets in temporary folders (never the committed one)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from respine_nb import config, io, synthetic


@pytest.fixture(scope="session")
def default_tables():
    """The default synthetic cohort, generated in memory."""
    return synthetic.generate()


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
