"""Datasets: WikiText-2 fetching/verification and word-level corpora."""

from pathlib import Path

WIKITEXT2_SPEC = Path(__file__).with_name("wikitext2.yaml")
"""The shipped WikiText-2 mirrors, checksum and line counts (package data, so
``geosparse data wikitext2`` finds it from any directory)."""
