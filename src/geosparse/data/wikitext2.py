"""Fetch and verify WikiText-2 (v1, tokenized) into ``DEST/wiki.{train,valid,test}.tokens``.

Sources (``Mirror.kind``):

- ``zip``: ``wikitext-2-v1.zip`` by URL or local path; its MD5 must match, then the
  three ``<member_dir>/wiki.<split>.tokens`` members are extracted.
- ``parquet``: one parquet file per split (URL or path template with ``{split}`` =
  ``train`` / ``validation`` / ``test``, the Hugging Face layout); needs ``pyarrow``.
  There is no archive checksum, so the line and token counts are the verification.
- ``dir``: a local directory holding the three ``wiki.<split>.tokens`` files (directly or
  under ``<member_dir>/``).

Every split's line count (and token count, where the spec gives one) is checked.
Work happens in a temporary folder next to ``DEST`` that is renamed to ``DEST`` only
after everything verified, so a failure never leaves a partial ``DEST`` behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

import geosparse
from geosparse.config import ConfigError, parse_yaml, read_text_file
from geosparse.runio import write_json

SPLITS = ("train", "valid", "test")
PARQUET_SPLITS = {"train": "train", "valid": "validation", "test": "test"}
"""Our split names -> the Hugging Face split names used in parquet file names."""
KINDS = ("zip", "parquet", "dir")
PROVENANCE = "source.json"


class DataError(RuntimeError):
    """A fetch or verification failure; the message says what failed and what to do."""


@dataclass(frozen=True)
class Mirror:
    """One place to get WikiText-2 from: ``kind`` in ``KINDS``, ``url`` a URL or path."""

    kind: str
    url: str

    @classmethod
    def parse(cls, source: str) -> Mirror:
        """Kind of a ``--source``: ``{split}`` -> parquet, a directory -> dir, else zip."""
        if "{split}" in source:
            return cls("parquet", source)
        if not _is_url(source) and Path(source).is_dir():
            return cls("dir", source)
        return cls("zip", source)


@dataclass(frozen=True)
class SplitSpec:
    """Expected size of one split file: lines, and tokens (words + one ``<eos>`` per line)."""

    lines: int
    tokens: int | None = None


@dataclass(frozen=True)
class Wikitext2Spec:
    """What to fetch and how to verify it (``geosparse.data.WIKITEXT2_SPEC`` unless ``--config`` names another)."""

    archive_md5: str | None
    member_dir: str
    splits: dict[str, SplitSpec]
    mirrors: tuple[Mirror, ...]
    timeout_s: float = 60.0

    @classmethod
    def from_dict(cls, data: dict) -> Wikitext2Spec:
        """Build from a parsed YAML mapping; raises ``ValueError`` naming a bad key."""
        try:
            splits = {
                name: SplitSpec(int(data["splits"][name]["lines"]), data["splits"][name].get("tokens"))
                for name in SPLITS
            }
            mirrors = tuple(Mirror(m["kind"], str(m["url"])) for m in data.get("mirrors") or [])
            spec = cls(
                data.get("archive_md5"), str(data["member_dir"]), splits, mirrors, float(data.get("timeout_s", 60.0))
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            problem = f"{type(error).__name__}: {error}"
            raise ConfigError(f"wikitext2 data config: missing or malformed key ({problem})") from None
        for mirror in spec.mirrors:
            if mirror.kind not in KINDS:
                raise ConfigError(
                    f"wikitext2 data config key 'mirrors.kind': {mirror.kind!r} is not one of {list(KINDS)}"
                )
        return spec

    @classmethod
    def load(cls, path: str | Path) -> Wikitext2Spec:
        path = Path(path)
        text = read_text_file(path, "wikitext2 data config")
        try:
            data = parse_yaml(text) or {}
        except (yaml.YAMLError, ConfigError) as error:
            raise ConfigError(f"wikitext2 data config {path}: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"wikitext2 data config {path} must hold a mapping at the top level")
        return cls.from_dict(data)


def count(path: Path) -> SplitSpec:
    """Lines and tokens (whitespace-split words + one ``<eos>`` per line) of a text file."""
    lines = tokens = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            lines += 1
            tokens += len(line.split()) + 1
    return SplitSpec(lines, tokens)


def verify(folder: Path, spec: Wikitext2Spec) -> dict[str, dict]:
    """Check the three split files in ``folder``; returns their counts and SHA-256."""
    found = {}
    for split in SPLITS:
        path = folder / f"wiki.{split}.tokens"
        if not path.is_file():
            raise DataError(f"split {split!r} missing: no {path.name}")
        try:
            got = count(path)
        except UnicodeDecodeError as error:
            raise DataError(f"{path.name} is not UTF-8 text ({error})") from None
        want = spec.splits[split]
        if got.lines != want.lines:
            raise DataError(f"wrong line count: {path.name} has {got.lines} lines, expected {want.lines}")
        if want.tokens is not None and got.tokens != want.tokens:
            raise DataError(f"wrong token count: {path.name} has {got.tokens} tokens, expected {want.tokens}")
        found[split] = {"lines": got.lines, "tokens": got.tokens, "sha256": _digest(path, "sha256")}
    return found


def fetch(
    dest: str | Path,
    spec: Wikitext2Spec,
    sources: list[str] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Make ``dest`` hold verified ``wiki.{train,valid,test}.tokens`` (+ ``source.json``).

    Tries ``sources`` (parsed with ``Mirror.parse``) or else ``spec.mirrors`` in order.
    Returns the provenance record. If ``dest`` already holds a verified copy nothing is
    fetched. Raises ``DataError`` (listing every mirror tried and why it failed) and
    leaves no partial files when no source works.
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise DataError(f"{dest} exists and is not a folder; choose another --dest")
    if dest.exists() and any(dest.iterdir()):
        try:
            splits = verify(dest, spec)
        except DataError as error:
            raise DataError(
                f"{dest} exists but is not a complete WikiText-2 copy ({error}); remove it or choose another --dest"
            ) from None
        log(f"{dest} already holds a verified WikiText-2 copy")
        return {"source": "existing", "splits": splits}
    mirrors = [Mirror.parse(s) for s in sources] if sources else list(spec.mirrors)
    if not mirrors:
        raise DataError("no WikiText-2 source configured; pass --source URL_OR_PATH")
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for number, mirror in enumerate(mirrors, 1):
        log(f"[{number}/{len(mirrors)}] trying {mirror.kind} source {mirror.url}")
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.partial-"))
        try:
            out = work / "out"
            out.mkdir()
            record = {"source": mirror.url, "kind": mirror.kind, **_FETCHERS[mirror.kind](mirror.url, work, out, spec)}
            record["splits"] = verify(out, spec)
            write_json(out / PROVENANCE, record)
            if dest.exists():  # an empty folder: replace it
                dest.rmdir()
            os.replace(out, dest)
            log(f"verified and stored in {dest}")
            return record
        except DataError as error:
            failures.append(f"{mirror.kind} {mirror.url}: {error}")
            log(f"    failed: {error}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    raise DataError(
        "could not obtain WikiText-2; tried:\n  "
        + "\n  ".join(failures)
        + "\nNothing was written. Without network access, pass a local copy: "
        "--source /path/to/wikitext-2-v1.zip (or a directory holding "
        "wiki.{train,valid,test}.tokens)."
    )


def _from_zip(url: str, work: Path, out: Path, spec: Wikitext2Spec) -> dict:
    archive = _obtain(url, work / "download.zip", spec.timeout_s)
    md5 = _digest(archive, "md5")
    if spec.archive_md5 and md5 != spec.archive_md5.lower():
        raise DataError(f"checksum mismatch: MD5 {md5}, expected {spec.archive_md5}")
    try:
        with zipfile.ZipFile(archive) as zf:
            names = set(zf.namelist())
            for split in SPLITS:
                member = f"{spec.member_dir}/wiki.{split}.tokens"
                if member not in names:
                    raise DataError(f"split {split!r} missing: the archive has no {member}")
                with zf.open(member) as src, (out / f"wiki.{split}.tokens").open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DataError(f"corrupt or truncated zip archive ({error})") from None
    return {"md5": md5}


def _from_dir(url: str, work: Path, out: Path, spec: Wikitext2Spec) -> dict:
    folder = Path(url)
    if not (folder / "wiki.train.tokens").exists() and (folder / spec.member_dir).is_dir():
        folder = folder / spec.member_dir
    for split in SPLITS:
        path = folder / f"wiki.{split}.tokens"
        if not path.is_file():
            raise DataError(f"split {split!r} missing: no {path}")
        shutil.copyfile(path, out / path.name)
    return {}


def _from_parquet(url: str, work: Path, out: Path, spec: Wikitext2Spec) -> dict:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading parquet needs pyarrow (pip install pyarrow)") from None
    for split, hf_split in PARQUET_SPLITS.items():
        path = _obtain(url.format(split=hf_split), work / f"{split}.parquet", spec.timeout_s)
        try:
            rows = pq.read_table(path, columns=["text"]).column(0).to_pylist()
        except Exception as error:  # pyarrow raises several types for bad files
            raise DataError(f"unreadable parquet file for split {split!r} ({error})") from None
        with (out / f"wiki.{split}.tokens").open("w", encoding="utf-8") as fh:
            fh.writelines((row or "").removesuffix("\n") + "\n" for row in rows)
    return {}


_FETCHERS = {"zip": _from_zip, "parquet": _from_parquet, "dir": _from_dir}


def _is_url(source: str) -> bool:
    return source.split(":", 1)[0].lower() in ("http", "https", "ftp", "file")


def _obtain(url: str, target: Path, timeout: float) -> Path:
    """A local path as is, or ``url`` downloaded to ``target`` (checked for truncation)."""
    if not _is_url(url):
        path = Path(url)
        if not path.is_file():
            raise DataError(f"no such file: {path}")
        return path
    agent = {"User-Agent": f"geosparse/{geosparse.__version__}"}
    request = urllib.request.Request(url, headers=agent)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, target.open("wb") as fh:
            expected = response.headers.get("Content-Length")
            shutil.copyfileobj(response, fh, 1 << 20)
    except urllib.error.HTTPError as error:
        raise DataError(f"download failed: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        reason = f"no network or host unreachable? {error.reason}"
        raise DataError(f"download failed ({reason})") from None
    except (OSError, http.client.HTTPException) as error:
        raise DataError(f"download failed or was cut short: {error!r}") from None
    size = target.stat().st_size
    if expected is not None and size != int(expected):
        raise DataError(f"truncated download: {size} of {expected} bytes")
    return target


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
