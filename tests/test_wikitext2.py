"""WikiText-2 fetching: real HTTP download path (local server), verification failures,
offline sources, and the tokenised tensor cache."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import socket
import threading
import zipfile
from pathlib import Path

import pytest
import torch

from conftest import EXCERPT_COUNTS, WIKITEXT_EXCERPT, run_cli_subprocess
from geosparse.data.corpus import EOS, UNK, build_vocab, load_corpus, tokenize
from geosparse.data.wikitext2 import (
    DataError,
    Mirror,
    SplitSpec,
    Wikitext2Spec,
    count,
    fetch,
)

SHARED = WIKITEXT_EXCERPT
VALID_LINES, VALID_TOKENS = EXCERPT_COUNTS["valid"]
TEST_LINES, TEST_TOKENS = EXCERPT_COUNTS["test"]


@functools.cache
def _split_texts() -> dict[str, bytes]:
    """Canonical-layout contents built from the genuine valid/test excerpt (train := valid)."""
    valid, test = (SHARED / "valid.txt").read_bytes(), (SHARED / "test.txt").read_bytes()
    return {"train": valid, "valid": valid, "test": test}


def _zip(splits=("train", "valid", "test")) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for split in splits:
            zf.writestr(f"wikitext-2/wiki.{split}.tokens", _split_texts()[split])
    return buffer.getvalue()


def _spec(archive: bytes | None, mirrors=(), **lines) -> Wikitext2Spec:
    """A test-only spec: MD5 of ``archive`` and the line counts of the test layout."""
    counts = {"train": VALID_LINES, "valid": VALID_LINES, "test": TEST_LINES, **lines}
    return Wikitext2Spec(
        archive_md5=hashlib.md5(archive).hexdigest() if archive is not None else None,
        member_dir="wikitext-2",
        splits={s: SplitSpec(n) for s, n in counts.items()},
        mirrors=tuple(mirrors),
        timeout_s=5,
    )


@pytest.fixture
def serve():
    """Serve bytes over HTTP on 127.0.0.1; returns ``url = serve(name, payload)``."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def add(name: str, payload: bytes) -> str:
        files[name] = payload
        return f"http://127.0.0.1:{server.server_port}/{name}"

    yield add
    server.shutdown()
    server.server_close()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _assert_nothing_left(dest: Path) -> None:
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == [], "partial or temporary files left behind"


def test_download_from_local_http_server(tmp_path, serve):
    archive = _zip()
    url = serve("wikitext-2-v1.zip", archive)
    dest = tmp_path / "data" / "wikitext-2"
    record = fetch(dest, _spec(archive, [Mirror("zip", url)]))
    assert record["md5"] == hashlib.md5(archive).hexdigest()
    for split, text in _split_texts().items():
        assert (dest / f"wiki.{split}.tokens").read_bytes() == text
    assert (dest / "source.json").is_file()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["wikitext-2"]
    # A second call finds the verified copy and downloads nothing.
    again = fetch(dest, _spec(archive, [Mirror("zip", serve("gone.zip", b""))]))
    assert again["source"] == "existing"


def test_excerpt_counts_and_checksums_match_its_readme():
    readme = (SHARED / "README.md").read_text()
    for split, (lines, tokens) in EXCERPT_COUNTS.items():
        path = SHARED / f"{split}.txt"
        assert count(path) == SplitSpec(lines, tokens)
        assert f"| {lines} |" in readme and f"| {tokens:,} |" in readme
        assert hashlib.sha256(path.read_bytes()).hexdigest() in readme


def test_falls_back_to_second_mirror(tmp_path, serve):
    archive = _zip()
    mirrors = [Mirror("zip", f"http://127.0.0.1:{_unused_port()}/x.zip"), Mirror("zip", serve("ok.zip", archive))]
    fetch(tmp_path / "wt2", _spec(archive, mirrors))
    assert (tmp_path / "wt2" / "wiki.test.tokens").is_file()


def test_checksum_mismatch(tmp_path, serve):
    archive = _zip()
    spec = _spec(b"something else", [Mirror("zip", serve("w.zip", archive))])
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(tmp_path / "wt2", spec)
    _assert_nothing_left(tmp_path / "wt2")


def test_truncated_download_is_detected(tmp_path, serve):
    archive = _zip()
    spec = _spec(archive, [Mirror("zip", serve("w.zip", archive[: len(archive) // 2]))])
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch(tmp_path / "wt2", spec)
    _assert_nothing_left(tmp_path / "wt2")


def test_corrupt_zip_with_matching_checksum(tmp_path, serve):
    corrupt = _zip()[:-200]  # end-of-central-directory record cut off
    with pytest.raises(DataError, match="corrupt or truncated zip"):
        fetch(tmp_path / "wt2", _spec(corrupt, [Mirror("zip", serve("w.zip", corrupt))]))
    _assert_nothing_left(tmp_path / "wt2")


def test_missing_split(tmp_path, serve):
    archive = _zip(splits=("train", "valid"))
    with pytest.raises(DataError, match="split 'test' missing"):
        fetch(tmp_path / "wt2", _spec(archive, [Mirror("zip", serve("w.zip", archive))]))
    _assert_nothing_left(tmp_path / "wt2")


def test_wrong_line_count(tmp_path, serve):
    archive = _zip()
    spec = _spec(archive, [Mirror("zip", serve("w.zip", archive))], valid=VALID_LINES + 1)
    with pytest.raises(
        DataError,
        match=rf"wiki\.valid\.tokens has {VALID_LINES} lines, "
        rf"expected {VALID_LINES + 1}",
    ):
        fetch(tmp_path / "wt2", spec)
    _assert_nothing_left(tmp_path / "wt2")


def test_no_network_names_mirrors_and_local_option(tmp_path):
    urls = [
        f"http://127.0.0.1:{_unused_port()}/wikitext-2-v1.zip",
        f"http://127.0.0.1:{_unused_port()}/{{split}}-00000-of-00001.parquet",
    ]
    spec = _spec(b"", [Mirror("zip", urls[0]), Mirror("parquet", urls[1])])
    with pytest.raises(DataError) as caught:
        fetch(tmp_path / "wt2", spec)
    message = str(caught.value)
    assert urls[0] in message and urls[1] in message
    assert "--source" in message and "Nothing was written" in message
    _assert_nothing_left(tmp_path / "wt2")


def test_local_zip_and_directory_sources_work_offline(tmp_path):
    archive = _zip()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "wikitext-2-v1.zip").write_bytes(archive)
    local_zip = str(tmp_path / "in" / "wikitext-2-v1.zip")
    fetch(tmp_path / "out" / "a", _spec(archive), sources=[local_zip])
    fetch(tmp_path / "out" / "b", _spec(None), sources=[str(tmp_path / "out" / "a")])
    assert (tmp_path / "out" / "b" / "wiki.train.tokens").read_bytes() == _split_texts()["train"]


def test_existing_incomplete_destination_is_refused(tmp_path):
    dest = tmp_path / "wt2"
    dest.mkdir()
    (dest / "wiki.train.tokens").write_text("x\n")
    with pytest.raises(DataError, match="not a complete WikiText-2 copy"):
        fetch(dest, _spec(None), sources=[str(SHARED)])


def test_parquet_mirror(tmp_path, serve):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    hf_names = {"train": "train", "valid": "validation", "test": "test"}
    for split, text in _split_texts().items():
        rows = text.decode().splitlines(keepends=True)
        buffer = io.BytesIO()
        pq.write_table(pa.table({"text": rows}), buffer)
        url = serve(f"{hf_names[split]}-00000-of-00001.parquet", buffer.getvalue())
    template = url.replace("test-", "{split}-")
    fetch(tmp_path / "wt2", _spec(None, [Mirror("parquet", template)]))
    for split, text in _split_texts().items():
        assert count(tmp_path / "wt2" / f"wiki.{split}.tokens") == count_bytes(text)


def count_bytes(text: bytes) -> SplitSpec:
    lines = text.decode().splitlines()
    return SplitSpec(len(lines), sum(len(line.split()) + 1 for line in lines))


def test_cli_fetch_exit_codes(tmp_path, serve):
    archive = _zip()
    config = tmp_path / "wt2.yaml"
    config.write_text(
        f"archive_md5: {hashlib.md5(archive).hexdigest()}\nmember_dir: wikitext-2\n"
        f"splits: {{train: {{lines: {VALID_LINES}}}, valid: {{lines: {VALID_LINES}}}, "
        f"test: {{lines: {TEST_LINES}}}}}\n"
        f"mirrors: [{{kind: zip, url: '{serve('w.zip', archive)}'}}]\n"
    )
    dest = tmp_path / "out" / "wt2"
    ok = run_cli_subprocess(["data", "wikitext2", "--dest", str(dest), "--config", str(config)])
    assert ok.returncode == 0, ok.stderr
    assert (dest / "wiki.valid.tokens").is_file()
    bad = run_cli_subprocess(
        [
            "data",
            "wikitext2",
            "--dest",
            str(tmp_path / "other"),
            "--config",
            str(config),
            "--source",
            f"http://127.0.0.1:{_unused_port()}/w.zip",
        ]
    )
    assert bad.returncode == 1
    assert "could not obtain WikiText-2" in bad.stderr and "--source" in bad.stderr
    assert not (tmp_path / "other").exists()


def test_cli_uses_the_shipped_spec_from_any_directory(tmp_path):
    """Run from a folder that is not the repository: the default ``--config`` is the
    spec shipped with the package (the paper's line counts), not a path relative to the
    working directory; ``--dest`` is relative to it. The excerpt has no train split, so
    the fetch fails on the data (exit 1), never on a missing config (exit 2)."""
    result = run_cli_subprocess(["data", "wikitext2", "--dest", "wt2", "--source", str(WIKITEXT_EXCERPT)], cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "split 'train' missing" in result.stderr and "config" not in result.stderr
    assert not (tmp_path / "wt2").exists()


def test_shipped_spec_holds_the_canonical_checksum_and_counts():
    from geosparse.data import WIKITEXT2_SPEC

    spec = Wikitext2Spec.load(WIKITEXT2_SPEC)
    assert spec.archive_md5 == "542ccefacc6c27f945fb54453812b3cd"
    assert spec.splits["train"] == SplitSpec(36718, 2088628)
    assert [m.kind for m in spec.mirrors] == ["zip", "parquet"]


def test_tokenisation_matches_paper_rules():
    vocab = build_vocab(["a b\n", "b c\n"])
    assert vocab == ["a", "b", EOS, "c", UNK]
    ids, unknown = tokenize(["a  z\n", "\n"], {w: i for i, w in enumerate(vocab)})
    assert ids.tolist() == [0, 4, 2, 2] and unknown == 1


def test_fixture_corpus_is_cached_and_labelled(tmp_path, monkeypatch):
    data = {
        "corpus": "fixture",
        "dir": str(SHARED),
        "cache_dir": str(tmp_path / "cache"),
        "fixture_train_fraction": 0.8,
        "max_tokens": {"train": None, "valid": None, "test": None},
    }
    corpus = load_corpus(data)
    assert "fixture" in corpus.description and "not WikiText-2 train" in corpus.description
    total = sum(int(t.numel()) for s, t in corpus.splits.items() if s != "test")
    assert total == VALID_TOKENS  # train + valid = all of the valid excerpt
    assert corpus.splits["test"].numel() == TEST_TOKENS
    assert corpus.unknown["train"] == 0 and corpus.unknown["valid"] > 0
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1
    assert torch.load(cached[0], weights_only=True)["vocab"] == corpus.vocab

    def no_tokenising(*args, **kwargs):
        raise AssertionError("re-tokenised although a cache exists")

    monkeypatch.setattr("geosparse.data.corpus.tokenize", no_tokenising)
    again = load_corpus({**data, "max_tokens": {"train": 100, "valid": None, "test": 50}})
    assert torch.equal(again.splits["train"], corpus.splits["train"][:100])
    assert again.splits["test"].numel() == 50


def test_fetched_copy_loads_as_the_wikitext2_corpus(tmp_path):
    archive = _zip()
    fetch(tmp_path / "wt2", _spec(archive), sources=[_write(tmp_path / "w.zip", archive)])
    data = {
        "corpus": "wikitext2",
        "dir": str(tmp_path / "wt2"),
        "cache_dir": str(tmp_path / "c"),
        "fixture_train_fraction": 0.8,
        "max_tokens": {"train": None, "valid": None, "test": None},
    }
    corpus = load_corpus(data)
    assert corpus.description.startswith("WikiText-2") and "fixture" not in corpus.description
    assert corpus.splits["train"].numel() == corpus.splits["valid"].numel() == VALID_TOKENS
    assert corpus.unknown == {"train": 0, "valid": 0, "test": corpus.unknown["test"]}
    with pytest.raises(ValueError, match="geosparse data wikitext2"):
        load_corpus({**data, "dir": str(tmp_path / "missing")})


def _write(path: Path, payload: bytes) -> str:
    path.write_bytes(payload)
    return str(path)


def test_destination_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "wt2").write_text("not a folder")
    with pytest.raises(DataError, match="not a folder"):
        fetch(tmp_path / "wt2", _spec(None), sources=[str(SHARED)])
    assert (tmp_path / "wt2").read_text() == "not a folder"
