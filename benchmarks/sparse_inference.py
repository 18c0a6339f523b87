"""Sparse inference latency and weight memory of the navigation RNN (CPU).

Times ``SparseNavigationRNN`` (geosparse.sparse) with ``torch.utils.benchmark``: one
recurrent step (``step``) and a whole sequence of ``--steps`` steps including the
encoder and the read-out (``sequence``), for hidden sizes N, W_hh sparsities, batch sizes
and W_hh formats:

    dense       all matrices dense (the masked dense model; addmm / MKL GEMM)
    nn.RNN      (sequence only) the training model itself, NavigationRNN (torch.nn.RNN)
    csr         W_hh in CSR (int32 indices, MKL), hidden units in training order
    csr-geo     W_hh in CSR after geometry ordering of the hidden units
    bsr-geo     W_hh in BSR (b x b blocks, --blocksize) after geometry ordering
    scipy-bsr-geo  (step only) scipy.sparse.bsr_matrix, the same ordered blocks: an
                external reference kernel, not used by the package

W_hh masks are SYNTHETIC: the fraction 1 - sparsity of entries with the lowest inverted
torus-DoG coefficient (``geosparse.sparse.synthetic_mask``, what a moduli-regularized
model converges to); ``--control`` adds the permuted-DoG mask (no geometry). Weights are
Gaussian on the mask, scaled to spectral radius ~1. Encoder / decoder (Np = --np) stay
dense in every format, so the formats differ in W_hh only. The dense model does the same
work whatever the sparsity, so it is timed once per (N, batch, kind) at the first sparsity
and that time is the baseline for all rows (for sequences: the faster of dense and nn.RNN).

Also writes block densities (fraction of non-empty b x b blocks, b = 16, 32, 64) of the
synthetic torus and permuted masks before and after ordering, and of trained runs
(``--trained-run DIR``, masks from DIR/model_sparse.pt: TRAINED).

    python benchmarks/sparse_inference.py --quick --out results/sparse     # ~1 min
    python benchmarks/sparse_inference.py --out results/sparse             # full grid
    python benchmarks/sparse_inference.py --plot-only --out results/sparse

Needs the ``pipeline`` extra (pandas, seaborn); scipy (the ``bench`` extra: ``pip install -e
".[pipeline,bench]"``) only for ``scipy-bsr-geo`` (skipped
without it). Outputs (in --out): ``sparse_inference.csv`` (appended to with --append),
``sparse_blocks.csv``, ``sparse_inference.png``, ``sparse_tables.md`` (markdown tables).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from sparse_helpers import hilbert_order, synthetic_mask

if TYPE_CHECKING:  # pandas itself is imported lazily, where main and plot use it
    import pandas as pd

from geosparse.inference_benchmark import measure
from geosparse.runs import load_finished
from geosparse.sparse import (
    BLOCKSIZES,
    INFERENCE_FORMATS,
    SparseNavigationRNN,
    block_density,
    geometry_order,
    nbytes,
    stored_nbytes,
)
from geosparse.tasks.navigation import NavigationRNN

FORMATS = (*INFERENCE_FORMATS, "scipy-bsr-geo")
"""The library's inference formats, plus scipy's BSR kernel (W_hh as in bsr-geo)."""


def build(n: int, sparsity: float, np_: int, control: bool, seed: int = 0):
    """Dense weights with a synthetic W_hh mask, and the hidden units' torus positions."""
    g = torch.Generator().manual_seed(seed)
    density = 1.0 - sparsity
    if sparsity == 0:
        mask = torch.ones(n, n, dtype=torch.bool)
        positions = 10.0 * torch.rand(n, 2, generator=g, dtype=torch.float64)
    else:
        mask, positions = synthetic_mask(n, density, "torus", permute=control, seed=seed)
    w_hh = torch.randn(n, n, generator=g) * mask / math.sqrt(density * n)
    weights = {
        "encoder": torch.randn(n, np_, generator=g) / math.sqrt(np_),
        "W_ih": torch.randn(n, 2, generator=g),
        "W_hh": w_hh,
        "decoder": torch.randn(np_, n, generator=g) / math.sqrt(n),
    }
    return weights, mask, positions


def scipy_bsr_step(model: SparseNavigationRNN, blocksize: int):
    """``step`` with W_hh as a scipy BSR matrix (same weights and order as ``model``)."""
    import scipy.sparse

    w = model.weights["W_hh"]
    dense = w.to_dense() if w.layout != torch.strided else w
    matrix = scipy.sparse.bsr_matrix(dense.numpy(), blocksize=(blocksize, blocksize))
    w_ih_t = model.weights["W_ih"].t().contiguous()

    def step(h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        drive = x @ w_ih_t
        if h.shape[0] == 1:
            return (torch.from_numpy(matrix @ h[0].numpy()) + drive[0]).relu_().unsqueeze(0)
        out = torch.from_numpy(matrix @ h.t().contiguous().numpy())
        return (out.t() + drive).relu_()

    return step, matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes


def bench(args: argparse.Namespace) -> list[dict]:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    rows: list[dict] = []
    for n in args.n:
        dense_time: dict[tuple[int, str], float] = {}
        for sparsity in args.sparsity:
            for control in [False, True] if args.control else [False]:
                if control and sparsity == 0:
                    continue
                weights, mask, positions = build(n, sparsity, args.np, control)
                mask_name = ("permuted" if control else "torus") + "-synthetic" if sparsity else "full"
                models = {}
                for fmt in args.formats:
                    if fmt in ("dense", "nn.RNN") and (control or dense_time):
                        continue
                    if fmt == "nn.RNN":
                        reference = NavigationRNN(args.np, n)
                        with torch.no_grad():
                            for name, p in reference.prunable().items():
                                p.copy_(weights[name])
                        models[fmt] = reference
                        continue
                    if fmt != "dense" and sparsity == 0 and not args.sparse_at_zero:
                        continue
                    # scipy-bsr-geo: dense in geometry order here, converted to scipy below
                    layout, order = INFERENCE_FORMATS.get(fmt, ("dense", "geometry"))
                    models[fmt] = SparseNavigationRNN.from_dense(
                        weights, None, layout, order, positions, "torus", args.blocksize, io_max_density=-1.0
                    )
                perm = models["bsr-geo"].permutation if "bsr-geo" in models else geometry_order(positions, "torus")
                ordered_mask = mask[perm][:, perm]
                for batch in args.batch:
                    g = torch.Generator().manual_seed(1)
                    velocity = 0.05 * torch.randn(args.steps, batch, 2, generator=g)
                    code = torch.softmax(torch.randn(batch, args.np, generator=g), -1)
                    h = torch.relu(torch.randn(batch, n, generator=g))
                    x = velocity[0]
                    for kind in args.kinds:
                        for fmt, model in models.items():
                            if (kind == "sequence" and fmt == "scipy-bsr-geo") or (kind == "step" and fmt == "nn.RNN"):
                                continue
                            w = weights["W_hh"] if fmt == "nn.RNN" else model.weights["W_hh"]
                            mem, stored = nbytes(w), stored_nbytes(w)
                            if fmt == "nn.RNN":
                                fn = lambda model=model, v=velocity, c=code: model(v, c)  # noqa: E731
                            elif fmt == "scipy-bsr-geo":
                                step, mem = scipy_bsr_step(model, args.blocksize)
                                stored = mem
                                fn = lambda step=step, h=h, x=x: step(h, x)  # noqa: E731
                            elif kind == "step":
                                fn = lambda model=model, h=h, x=x: model.step(h, x)  # noqa: E731
                            else:
                                fn = lambda model=model, v=velocity, c=code: model.sequence(v, c)  # noqa: E731
                            row = {
                                "n": n,
                                "sparsity": sparsity,
                                "mask": mask_name,
                                "format": fmt,
                                "blocksize": args.blocksize if "bsr" in fmt else None,
                                "kind": kind,
                                "batch": batch,
                                "steps": args.steps if kind == "sequence" else 1,
                                "threads": args.threads,
                                "W_hh_bytes_memory": mem,
                                "W_hh_bytes_stored": stored,
                                "W_hh_bytes_dense": n * n * 4,
                                "block_density_32": block_density(ordered_mask if fmt.endswith("-geo") else mask, 32),
                            }
                            step_fmt = "dense" if fmt == "nn.RNN" else fmt
                            step_time = next(
                                (
                                    r["time_ms"]
                                    for r in rows
                                    if r["n"] == n
                                    and r["sparsity"] == sparsity
                                    and r["mask"] == mask_name
                                    and r["format"] == step_fmt
                                    and r["batch"] == batch
                                    and r["kind"] == "step"
                                ),
                                None,
                            )
                            estimate = (step_time or 0) * args.steps / 1e3
                            if kind == "sequence" and estimate > args.max_call_seconds:
                                row.update(time_ms=float("nan"), runs=0, note=f"skipped: ~{estimate:.0f} s per call")
                            else:
                                seconds, runs = measure(fn, args.min_run_time)
                                row.update(time_ms=seconds * 1e3, runs=runs, note="")
                            if fmt == "dense":
                                dense_time[(batch, kind)] = row["time_ms"]
                            base = dense_time.get((batch, kind), float("nan"))
                            row["speedup_vs_dense"] = base / row["time_ms"] if row["time_ms"] else float("nan")
                            if fmt == "nn.RNN":  # the baseline is the faster of the two dense models
                                dense_time[(batch, kind)] = min(base, row["time_ms"])
                            row["memory_ratio_vs_dense"] = row["W_hh_bytes_dense"] / mem
                            rows.append(row)
                            print(
                                f"N={n} s={sparsity:.2f} {mask_name:18s} {fmt:13s} {kind:8s} B={batch:<3d} "
                                f"{row['time_ms']:9.3f} ms x{row['speedup_vs_dense']:6.2f} "
                                f"mem/dense 1/{row['memory_ratio_vs_dense']:.2f} {row['note']}",
                                flush=True,
                            )
    return rows


def blocks(args: argparse.Namespace) -> list[dict]:
    """Block densities of synthetic (and trained) masks before / after ordering."""
    rows = []
    for n in args.n:
        for sparsity in [s for s in args.sparsity if s > 0]:
            for control in (False, True):
                mask, positions = synthetic_mask(n, 1 - sparsity, "torus", permute=control)
                name = "permuted-synthetic" if control else "torus-synthetic"
                orders = {
                    "none": None,
                    "geometry": geometry_order(positions, "torus"),
                    "hilbert": hilbert_order(positions, "torus"),
                }
                for order, perm in orders.items():
                    m = mask if perm is None else mask[perm][:, perm]
                    rows.append(
                        {
                            "n": n,
                            "sparsity": sparsity,
                            "mask": name,
                            "order": order,
                            **{f"b{b}": block_density(m, b) for b in BLOCKSIZES},
                        }
                    )
    for run_dir in args.trained_run:
        finished = load_finished(run_dir, task="navigation")
        run, masks = finished.run, finished.masks
        mask = masks["W_hh"]
        reg = run.regularizer
        name = f"trained:{Path(run_dir).name} ({reg.space.name}{', permuted' if reg.permute else ''})"
        orders = {"none": None}
        if getattr(reg, "positions", None) is not None:
            orders["geometry"] = geometry_order(reg.positions, reg.space)
        for order, perm in orders.items():
            m = mask if perm is None else mask[perm][:, perm]
            rows.append(
                {
                    "n": mask.shape[0],
                    "sparsity": 1 - float(mask.float().mean()),
                    "mask": name,
                    "order": order,
                    **{f"b{b}": block_density(m, b) for b in BLOCKSIZES},
                }
            )
    return rows


def plot(csv: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd
    import seaborn as sns

    df = pd.read_csv(csv)
    df = df[df["time_ms"].notna()].copy()
    # the dense models' times do not depend on the sparsity: draw them at every sparsity
    dense = df[df["format"].isin(["dense", "nn.RNN"])]
    copies = [dense.assign(sparsity=s) for s in sorted(df["sparsity"].unique())]
    df = pd.concat([df[~df["format"].isin(["dense", "nn.RNN"])], *copies], ignore_index=True)
    df["case"] = df["kind"] + " B=" + df["batch"].astype(str)
    df["format"] = df["format"] + df["mask"].map(lambda m: " (permuted)" if m.startswith("permuted") else "")
    df["W_hh sparsity (%)"] = (100 * df["sparsity"]).round().astype(int)
    grid = sns.relplot(
        data=df,
        x="W_hh sparsity (%)",
        y="time_ms",
        hue="format",
        style="format",
        col="case",
        row="n",
        kind="line",
        marker="o",
        height=2.8,
        aspect=1.1,
        facet_kws={"sharey": False},
    )
    grid.set(yscale="log")
    grid.set_ylabels("latency (ms, log)")
    grid.figure.suptitle(
        f"Navigation RNN inference on CPU ({int(df['threads'].iloc[0])} thread(s), shared machine)", y=1.02
    )
    grid.savefig(png, dpi=120, bbox_inches="tight")


def tables(out: Path) -> str:
    """Markdown tables (latency, memory, block density) from the CSVs in ``out``."""
    import pandas as pd

    df = pd.read_csv(out / "sparse_inference.csv")
    lines = [
        "Latency in ms (median; in brackets the speed-up over the faster dense model: dense, and for "
        "sequences also nn.RNN). Synthetic torus masks.",
        "",
    ]
    fmts = [f for f in FORMATS if f in set(df["format"])]
    lines += ["| N | sparsity | case | " + " | ".join(fmts) + " |", "|---" * (3 + len(fmts)) + "|"]
    torus = df[df["mask"] != "permuted-synthetic"]
    dense = torus[torus["format"].isin(["dense", "nn.RNN"])]
    for (n, sparsity, kind, batch), group in torus.groupby(["n", "sparsity", "kind", "batch"], sort=True):
        cells = []
        for fmt in fmts:
            source = (
                dense[(dense["n"] == n) & (dense["kind"] == kind) & (dense["batch"] == batch)]
                if fmt in ("dense", "nn.RNN")
                else group
            )
            row = source[source["format"] == fmt]
            if row.empty:
                cells.append("")
                continue
            row = row.iloc[0]
            if pd.isna(row["time_ms"]):
                cells.append("skipped")
            elif fmt == "dense":
                cells.append(f"{row['time_ms']:.3g}")
            else:
                cells.append(f"{row['time_ms']:.3g} ({row['speedup_vs_dense']:.1f}x)")
        lines.append(f"| {n} | {100 * sparsity:.0f} % | {kind} B={batch} | " + " | ".join(cells) + " |")
    control = df[df["mask"] == "permuted-synthetic"]
    if not control.empty:
        lines += [
            "",
            "Permuted-DoG control mask (no geometry), same timings:",
            "",
            "| N | sparsity | case | format | ms | speed-up vs dense | 32x32 block density |",
            "|---" * 7 + "|",
        ]
        for _, row in control.sort_values(["n", "sparsity", "batch", "kind", "format"]).iterrows():
            lines.append(
                f"| {row['n']} | {100 * row['sparsity']:.0f} % | {row['kind']} B={row['batch']} | "
                f"{row['format']} | {row['time_ms']:.3g} | {row['speedup_vs_dense']:.1f}x | "
                f"{row['block_density_32']:.3f} |"
            )
    mem = torus[(torus["kind"] == "step") & (torus["batch"] == torus["batch"].min())]
    lines += [
        "",
        "W_hh bytes (in memory: values + int32 indices; stored: int16 column indices) and dense / format ratio:",
        "",
        "| N | sparsity | format | bytes in memory | ratio | bytes stored | ratio | 32x32 block density |",
        "|---" * 8 + "|",
    ]
    for _, row in mem.sort_values(["n", "sparsity", "format"]).iterrows():
        if row["format"] in ("nn.RNN",):
            continue
        dense_bytes = row["W_hh_bytes_dense"]
        lines.append(
            f"| {row['n']} | {100 * row['sparsity']:.0f} % | {row['format']} | "
            f"{row['W_hh_bytes_memory']:,} | {dense_bytes / row['W_hh_bytes_memory']:.2f}x | "
            f"{row['W_hh_bytes_stored']:,} | {dense_bytes / row['W_hh_bytes_stored']:.2f}x | "
            f"{row['block_density_32']:.3f} |"
        )
    block_csv = out / "sparse_blocks.csv"
    if block_csv.exists():
        blocks_df = pd.read_csv(block_csv)
        lines += [
            "",
            "Fraction of non-empty b x b blocks of W_hh, before (none) and after ordering:",
            "",
            "| mask | N | sparsity | order | b=16 | b=32 | b=64 |",
            "|---" * 7 + "|",
        ]
        for _, row in blocks_df.iterrows():
            lines.append(
                f"| {row['mask']} | {row['n']} | {100 * row['sparsity']:.1f} % | {row['order']} | "
                f"{row['b16']:.3f} | {row['b32']:.3f} | {row['b64']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def write_csv(frame: pd.DataFrame, path: Path, append: bool) -> None:
    """``frame`` as CSV at ``path``: appended (no header) with ``--append`` to a file that
    exists, else a new file."""
    add = append and path.exists()
    frame.to_csv(path, mode="a" if add else "w", header=not add, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("results/sparse"))
    parser.add_argument("--n", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--sparsity", type=float, nargs="+", default=[0.0, 0.5, 0.9, 0.98])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--kinds", nargs="+", choices=["step", "sequence"], default=["step", "sequence"])
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    parser.add_argument("--steps", type=int, default=50, help="sequence length")
    parser.add_argument("--np", type=int, default=256, help="place cells (encoder / decoder width)")
    parser.add_argument("--blocksize", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument(
        "--max-call-seconds", type=float, default=4.0, help="skip sequences estimated (50 x step) above this"
    )
    parser.add_argument("--sparse-at-zero", action="store_true", help="also time sparse formats at sparsity 0")
    parser.add_argument("--control", action="store_true", help="also time the permuted-DoG mask")
    parser.add_argument("--trained-run", type=Path, action="append", default=[], help="run dir for block densities")
    parser.add_argument("--quick", action="store_true", help="N=4096, sparsity 0 0.9 0.98, batch 1, step + sequence")
    parser.add_argument("--no-blocks", action="store_true", help="skip the block-density table")
    parser.add_argument("--append", action="store_true", help="append to an existing CSV")
    parser.add_argument("--plot-only", action="store_true")
    args = parser.parse_args()
    if "scipy-bsr-geo" in args.formats and importlib.util.find_spec("scipy") is None:
        print("scipy is not installed: skipping the scipy-bsr-geo reference kernel")
        args.formats.remove("scipy-bsr-geo")
    if args.quick:
        args.n, args.sparsity, args.batch = [4096], [0.0, 0.9, 0.98], [1]
    args.out.mkdir(parents=True, exist_ok=True)
    csv, png = args.out / "sparse_inference.csv", args.out / "sparse_inference.png"
    if not args.plot_only:
        import pandas as pd

        torch.set_num_threads(args.threads)
        if not args.no_blocks:
            block_csv = args.out / "sparse_blocks.csv"
            frame = pd.DataFrame(blocks(args))
            write_csv(frame, block_csv, args.append)
            print(frame.to_string(index=False), flush=True)
        write_csv(pd.DataFrame(bench(args)), csv, args.append)
        print(f"wrote {csv}")
    plot(csv, png)
    (args.out / "sparse_tables.md").write_text(tables(args.out))
    print(f"wrote {png} and {args.out / 'sparse_tables.md'}")


if __name__ == "__main__":
    main()
