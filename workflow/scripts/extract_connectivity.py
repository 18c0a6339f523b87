"""|W_hh| against moduli distance of trained models, binned, as a tidy CSV.

For each run (a trained model whose regularizer places neurons on a moduli space), the
finished run is loaded (``geosparse.runs.load_finished``: final weights and the
regularizer's neuron positions, learned ones included), and all off-diagonal neuron pairs are binned by moduli
distance. Columns: run_id, regularizer, label, target, seed, space, bin, distance (bin
centre), n_pairs, mean_abs_weight, fraction_kept (nonzero W_hh), mean_coefficient (the
regularizer's R_ij). Runs that did not complete are skipped.
"""

from pathlib import Path

import pandas as pd
import torch
from tables_io import snakemake_job

from geosparse.files import read_json
from geosparse.runs import Run, load_finished

N_BINS = 25


def connectivity(run: Run, n_bins: int = N_BINS) -> pd.DataFrame:
    """Binned |W_hh|, kept fraction and R_ij against the moduli distance of a loaded run."""
    reg = run.regularizer
    distance = reg.space.distance(reg.positions, reg.positions)
    off_diagonal = ~torch.eye(reg.n, dtype=torch.bool)
    d = distance[off_diagonal].double()
    w = run.model.rnn.weight_hh_l0.detach().abs()[off_diagonal].double()
    r = reg.coefficients.detach()[off_diagonal].double()
    edges = torch.linspace(0, float(d.max()) * (1 + 1e-9), n_bins + 1, dtype=torch.float64)
    index = torch.bucketize(d, edges[1:-1])
    rows = []
    for b in range(n_bins):
        sel = index == b
        count = int(sel.sum())
        if count == 0:
            continue
        rows.append(
            {
                "bin": b,
                "distance": float((edges[b] + edges[b + 1]) / 2),
                "n_pairs": count,
                "mean_abs_weight": float(w[sel].mean()),
                "fraction_kept": float((w[sel] > 0).double().mean()),
                "mean_coefficient": float(r[sel].mean()),
            }
        )
    return pd.DataFrame(rows)


def extract(paths: list[str], records: list[dict]) -> pd.DataFrame:
    """The tidy connectivity table of the runs whose metrics.json files are ``paths``."""
    frames = []
    for path, record in zip(paths, records, strict=True):
        metrics = read_json(path)
        if metrics["status"] != "completed":
            continue
        run = load_finished(Path(path).parent, task="navigation").run  # learned positions too
        frame = connectivity(run)
        for key, value in {**record, "space": metrics["config"]["regularizer"]["space"]}.items():
            frame.insert(0, key, value)
        frames.append(frame)
    columns = [
        "run_id",
        "regularizer",
        "label",
        "target",
        "seed",
        "space",
        "bin",
        "distance",
        "n_pairs",
        "mean_abs_weight",
        "fraction_kept",
        "mean_coefficient",
    ]
    return pd.concat(frames)[columns] if frames else pd.DataFrame(columns=columns)


smk = snakemake_job(globals())
if smk is not None:
    torch.set_num_threads(smk.threads)
    extract(list(smk.input), smk.params.runs).to_csv(smk.output[0], index=False)
