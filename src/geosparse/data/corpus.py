"""Word-level corpora for language modelling: tokenisation, vocabulary, tensor cache.

Tokenisation follows the paper: each line is split on whitespace and gets one ``<eos>``;
the vocabulary is the training split's words in order of first appearance; words of
other splits missing from it map to ``<unk>`` (WikiText-2 has none, the fixture some).
Token ids are int64 tensors of shape ``(n_tokens,)``, cached with ``torch.save`` under
``cache_dir`` (keyed by the input files' SHA-256) and loaded with ``weights_only=True``.

Corpora (``data.corpus``):

- ``wikitext2``: ``dir/wiki.{train,valid,test}.tokens`` from ``geosparse data wikitext2``.
- ``fixture``: a stand-in built from the WikiText-2 *valid* and *test* files only
  (``dir/wiki.valid.tokens`` or ``dir/valid.txt``, same for test): train = the first
  ``fixture_train_fraction`` of the valid lines, valid = the rest of them, test = test.
  It is NOT WikiText-2 train, and every result on it is labelled as a fixture.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from geosparse.config import ConfigError
from geosparse.runio import load_checkpoint, save_checkpoint

EOS, UNK = "<eos>", "<unk>"
SPLITS = ("train", "valid", "test")
CACHE_VERSION = 1
"""Bump when tokenisation changes, so stale caches are not reused."""


@dataclass
class Corpus:
    """Token ids per split (int64, ``(n_tokens,)``), the vocabulary and a provenance label.

    ``unknown`` counts the tokens per split that were not in the vocabulary (now ``<unk>``).
    """

    vocab: list[str]
    splits: dict[str, torch.Tensor]
    description: str
    unknown: dict[str, int]

    def truncated(self, max_tokens: dict[str, int | None]) -> Corpus:
        """The first ``max_tokens[split]`` tokens of each split (``None``: all). Vocab kept."""
        splits = {s: t[: max_tokens.get(s) or None] for s, t in self.splits.items()}
        return Corpus(self.vocab, splits, self.description, self.unknown)


def build_vocab(lines: list[str]) -> list[str]:
    """Words of ``lines`` in order of first appearance, plus ``<eos>`` and ``<unk>``."""
    index: dict[str, None] = {}
    for line in lines:
        for word in [*line.split(), EOS]:
            index.setdefault(word, None)
    index.setdefault(UNK, None)
    return list(index)


def tokenize(lines: list[str], index: dict[str, int]) -> tuple[torch.Tensor, int]:
    """Ids ``(n_tokens,)`` of ``lines`` (words + ``<eos>`` per line) and the number of unknowns."""
    unk = index[UNK]
    ids = [index.get(word, unk) for line in lines for word in [*line.split(), EOS]]
    unknown = sum(1 for line in lines for word in line.split() if word not in index)
    return torch.tensor(ids, dtype=torch.int64), unknown


def load_corpus(data: dict) -> Corpus:
    """The corpus described by a config's ``data`` section, truncated per ``max_tokens``.

    Tokenises once and caches the result in ``data["cache_dir"]``; later calls (and
    other jobs) load the cached tensors.
    """
    kind, folder = data["corpus"], Path(data["dir"])
    files = _files(kind, folder)
    fraction = data["fixture_train_fraction"] if kind == "fixture" else None
    key = hashlib.sha256(repr((CACHE_VERSION, kind, fraction)).encode())
    for path in files.values():
        key.update(path.read_bytes())
    cache = Path(data["cache_dir"]) / f"{kind}-{key.hexdigest()[:16]}.pt"
    if cache.is_file():
        saved = load_checkpoint(cache)
        corpus = Corpus(saved["vocab"], saved["splits"], saved["description"], saved["unknown"])
    else:
        corpus = _build(kind, files, fraction)
        save_checkpoint(
            cache,
            {
                "vocab": corpus.vocab,
                "splits": corpus.splits,
                "description": corpus.description,
                "unknown": corpus.unknown,
            },
        )
    return corpus.truncated(data["max_tokens"])


def _files(kind: str, folder: Path) -> dict[str, Path]:
    needed = SPLITS if kind == "wikitext2" else ("valid", "test")
    files = {}
    for split in needed:
        candidates = [folder / f"wiki.{split}.tokens", folder / f"{split}.txt"]
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            hint = " (run `geosparse data wikitext2`)" if kind == "wikitext2" else ""
            raise ConfigError(
                f"config key 'data.dir': no {candidates[0].name} or {candidates[1].name} in {folder}{hint}"
            )
        files[split] = found
    return files


def _read(path: Path) -> list[str]:
    """Lines of a UTF-8 file, split exactly as ``wikitext2.count`` splits them."""
    try:
        with path.open(encoding="utf-8") as fh:
            return list(fh)
    except UnicodeDecodeError as error:
        raise ConfigError(f"corpus file {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None


def _build(kind: str, files: dict[str, Path], fraction: float | None) -> Corpus:
    if kind == "wikitext2":
        lines = {split: _read(files[split]) for split in SPLITS}
        description = f"WikiText-2 ({files['train'].parent})"
    else:
        valid = _read(files["valid"])
        cut = int(fraction * len(valid))
        lines = {"train": valid[:cut], "valid": valid[cut:], "test": _read(files["test"])}
        description = (
            f"fixture (not WikiText-2 train): train = first {fraction:.0%} of the WikiText-2 "
            f"valid lines, valid = the remaining lines, test = WikiText-2 test "
            f"({files['valid'].parent})"
        )
    vocab = build_vocab(lines["train"])
    index = {word: i for i, word in enumerate(vocab)}
    splits, unknown = {}, {}
    for split in SPLITS:
        splits[split], unknown[split] = tokenize(lines[split], index)
    return Corpus(vocab, splits, description, unknown)
