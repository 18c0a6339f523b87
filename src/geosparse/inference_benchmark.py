"""CPU latency and weight memory of a finished navigation run's sparse inference models.

``benchmark_run(run_dir, ...)`` exports the run's final (pruned) model in every format
and times it with ``torch.utils.benchmark`` on the run's own kind of input (trajectories
from its place cells):

    dense     every matrix dense (the masked dense model; addmm / MKL GEMM)
    nn.RNN    (sequence only) the training model itself, ``NavigationRNN``
    csr       W_hh in CSR, encoder / decoder in CSR where sparse enough (``geosparse export``)
    csr-geo   the same after geometry ordering of the hidden units (runs with positions)
    bsr-geo   W_hh in BSR (b x b blocks) after geometry ordering (when b divides Ng)

Cases: one recurrent step (``step``: ``relu(h W_hh^T + x W_ih^T)``) and a whole sequence
(``sequence``: encoder, ``steps`` recurrent steps, read-out), for each batch size. Every
format's sequence logits are compared with the training model's (``max_rel_error`` =
max |difference| / max |reference logit|). Used by ``geosparse benchmark-inference`` and
the pipeline rule ``sparse_inference_navigation``; ``benchmarks/sparse_inference.py``
covers synthetic masks at N = 1024 / 4096.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch.utils import benchmark as tb

from geosparse.files import read_json
from geosparse.pruning import w_hh_sparsity
from geosparse.runio import derive_seed, describe_device, versions
from geosparse.runs import load_finished
from geosparse.sparse import INFERENCE_FORMATS, SparseNavigationRNN, block_densities
from geosparse.tasks.navigation import TrajectoryGenerator

KINDS = ("step", "sequence")


def measure(fn: Callable[[], object], min_run_time: float) -> tuple[float, int]:
    """Median seconds per call of ``fn`` and the number of timed calls.

    One warm-up call first; a call slower than 1 s is measured by that call alone, one
    slower than ``min_run_time`` by one timed call, anything faster by
    ``blocked_autorange(min_run_time)``.
    """
    started = time.perf_counter()
    fn()
    warm = time.perf_counter() - started
    if warm > 1.0:
        return warm, 1
    timer = tb.Timer(stmt="fn()", globals={"fn": fn})
    if warm > min_run_time:
        return timer.timeit(1).median, 1
    m = timer.blocked_autorange(min_run_time=min_run_time)
    return m.median, len(m.times) * m.number_per_run


def inference_models(run_dir: str | Path, blocksize: int) -> tuple[dict, dict]:
    """``(models, info)``: the run's final model in every applicable format.

    ``models`` maps format name -> ``SparseNavigationRNN`` (or the training
    ``NavigationRNN`` for ``nn.RNN``); ``info`` holds the run's W_hh sparsity, sizes,
    space, and the block densities of W_hh before / after geometry ordering.
    """
    finished = load_finished(run_dir, task="navigation")
    run, masks = finished.run, finished.masks
    reg = run.regularizer
    w_hh = run.model.prunable()["W_hh"].detach() * masks.get("W_hh", True)
    n_hidden = w_hh.shape[0]

    def export(layout: str, order: str, **kwargs) -> SparseNavigationRNN:
        return SparseNavigationRNN.from_run(run, masks, layout, order, blocksize, **kwargs)

    models: dict = {}
    notes = {}
    for fmt, spec in INFERENCE_FORMATS.items():
        if spec is None:  # the training model
            models[fmt] = run.model.eval()
            continue
        layout, order = spec
        if order == "geometry" and getattr(reg, "positions", None) is None:
            notes[fmt] = f"skipped: space {reg.space.name!r} has no positions"
        elif layout == "bsr" and n_hidden % blocksize:
            notes[fmt] = f"skipped: blocksize {blocksize} does not divide Ng = {n_hidden}"
        else:  # the dense reference keeps every matrix dense
            models[fmt] = export(layout, order, **({"io_max_density": -1.0} if layout == "dense" else {}))
    info = {
        "n_hidden": n_hidden,
        "n_place_cells": run.task.place_cells.n,
        "space": reg.space.name,
        "permute": bool(reg.permute),
        "W_hh_sparsity": w_hh_sparsity([w_hh]),
        "block_density": block_densities(w_hh, models["csr-geo"].permutation if "csr-geo" in models else None),
        "skipped": notes,
    }
    return models, {"run": run, **info}


def _case(model, fmt: str, kind: str, velocity: torch.Tensor, init_code: torch.Tensor) -> Callable[[], object]:
    if fmt == "nn.RNN":
        return lambda: model(velocity, init_code)
    if kind == "sequence":
        return lambda: model.sequence(velocity, init_code)
    h, x = model.init_hidden(init_code), velocity[0]
    return lambda: model.step(h, x)


def benchmark_run(
    run_dir: str | Path,
    batches: Sequence[int] = (1, 200),
    steps: int = 50,
    blocksize: int = 32,
    min_run_time: float = 0.2,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Latency, memory and accuracy of every format of ``run_dir``'s final model.

    A run that did not complete (diverged) has no model: the result has its ``status``
    and no rows. Otherwise returns a JSON-able dict: provenance (run, versions, device, threads, load average
    before and after), ``info`` (sizes, W_hh sparsity, block densities) and ``rows`` (one
    per format x case x batch: ``time_ms``, ``calls``, ``speedup_vs_dense``,
    ``max_rel_error``, ``W_hh_bytes_memory`` / ``_stored``, ``model_bytes_memory`` /
    ``_stored``). Times are medians in ms on the CPU with torch's current thread count.
    """
    metrics_path = Path(run_dir) / "metrics.json"
    status = read_json(metrics_path).get("status") if metrics_path.is_file() else None
    if status not in (None, "completed"):  # e.g. diverged: no final model, nothing to time
        return {"run": str(run_dir), "status": status, "info": None, "rows": []}
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    models, info = inference_models(run_dir, blocksize)
    run = info.pop("run")
    dense_bytes = {name: w.numel() * 4 for name, w in run.model.prunable().items()}
    rows = []
    with torch.inference_mode():
        for batch in batches:
            stream = TrajectoryGenerator(
                run.task.place_cells, steps, batch, seed=derive_seed(run.seed, "inference"), chunk=1
            )
            data = stream.next_batch()
            velocity, init_code = data.velocity.contiguous(), data.init_code.contiguous()
            reference = run.model(velocity, init_code)
            scale = float(reference.abs().max()) or 1.0
            dense_ms: dict[str, float] = {}
            for fmt, model in models.items():
                logits = model(velocity, init_code)
                error = float((logits - reference).abs().max()) / scale
                if fmt == "nn.RNN":
                    w_bytes = {"memory": dense_bytes["W_hh"], "stored": dense_bytes["W_hh"]}
                    m_bytes = {"memory": sum(dense_bytes.values()), "stored": sum(dense_bytes.values())}
                else:
                    w_bytes = {"memory": model.nbytes()["W_hh"], "stored": model.stored_nbytes()["W_hh"]}
                    m_bytes = {"memory": sum(model.nbytes().values()), "stored": sum(model.stored_nbytes().values())}
                for kind in KINDS:
                    if fmt == "nn.RNN" and kind == "step":
                        continue
                    seconds, calls = measure(_case(model, fmt, kind, velocity, init_code), min_run_time)
                    time_ms = 1e3 * seconds
                    if fmt == "dense":
                        dense_ms[kind] = time_ms
                    rows.append(
                        {
                            "format": fmt,
                            "kind": kind,
                            "batch": batch,
                            "steps": steps if kind == "sequence" else 1,
                            "time_ms": time_ms,
                            "calls": calls,
                            "speedup_vs_dense": dense_ms[kind] / time_ms,
                            "max_rel_error": error,
                            "W_hh_bytes_memory": w_bytes["memory"],
                            "W_hh_bytes_stored": w_bytes["stored"],
                            "model_bytes_memory": m_bytes["memory"],
                            "model_bytes_stored": m_bytes["stored"],
                        }
                    )
                    if progress:
                        progress(
                            f"{fmt:8s} {kind:8s} B={batch:<4d} {time_ms:10.4f} ms  "
                            f"x{rows[-1]['speedup_vs_dense']:5.2f}  rel.err {error:.1e}"
                        )
    return {
        "run": str(run_dir),
        "status": "completed",
        "seed": run.seed,
        "settings": {"batches": list(batches), "steps": steps, "blocksize": blocksize, "min_run_time": min_run_time},
        "device": describe_device(torch.device("cpu")),
        "threads": torch.get_num_threads(),
        "versions": versions(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "wall_time_s": time.perf_counter() - started,
        "info": info,
        "rows": rows,
    }
