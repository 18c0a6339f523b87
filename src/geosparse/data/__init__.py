"""Datasets: WikiText-2 fetching/verification and word-level corpora."""
