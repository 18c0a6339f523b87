"""All structure.json files of the navigation grid -> four tidy CSVs.

- ``navigation_structure.csv``: one row per run: run_id, regularizer, label, target,
  seed, status, space, own_positions, locality, W_hh_sparsity, points, h0, h1, h2
  (long-lived bars), long_lived_threshold.
- ``navigation_heatmaps.csv``: the ordered |W_hh| heatmap of the grid's first target and
  seed, per regularizer: regularizer, label, row, col, abs_weight.
- ``navigation_rate_maps.csv``: the kept units' rate maps of the same runs: regularizer,
  label, unit, x_bin, y_bin, rate.
- ``navigation_persistence.csv``: every bar of every run: run_id, regularizer, label,
  target, seed, dim, birth, death (empty for the infinite H0 bar).
"""

import pandas as pd
from tables_io import read_run_files, snakemake_job

DIMS = ("h0", "h1", "h2")


def aggregate(paths: list[str], records: list[dict], first: tuple[float, int]) -> dict[str, pd.DataFrame]:
    """The four tables of ``paths`` (structure.json files aligned with ``records``);
    ``first``: the (target, seed) whose heatmaps and rate maps are plotted."""
    runs, heat, maps, bars = [], [], [], []
    for result, record in read_run_files(paths, records, "structure"):
        counts = result.get("long_lived") or []
        runs.append(
            {
                **record,
                "status": result["status"],
                **{key: result.get(key) for key in ("space", "own_positions", "locality", "W_hh_sparsity", "points")},
                **{dim: counts[i] if i < len(counts) else None for i, dim in enumerate(DIMS)},
                "long_lived_threshold": result.get("long_lived_threshold"),
            }
        )
        if result["status"] != "completed":
            continue
        cell = {"regularizer": record["regularizer"], "label": record["label"]}
        for dim, diagram in enumerate(result["persistence"]):
            bars += [
                {
                    "run_id": record["run_id"],
                    **cell,
                    "target": record["target"],
                    "seed": record["seed"],
                    "dim": dim,
                    "birth": birth,
                    "death": death,
                }
                for birth, death in diagram
            ]
        if (float(record["target"]), record["seed"]) != first:
            continue
        heat += [
            {**cell, "row": i, "col": j, "abs_weight": v}
            for i, row in enumerate(result["heatmap"])
            for j, v in enumerate(row)
        ]
        maps += [
            {**cell, "unit": int(unit), "x_bin": x, "y_bin": y, "rate": v}
            for unit, grid in result["rate_maps"].items()
            for y, row in enumerate(grid)
            for x, v in enumerate(row)
        ]
    columns = {
        "heatmaps": ["regularizer", "label", "row", "col", "abs_weight"],
        "rate_maps": ["regularizer", "label", "unit", "x_bin", "y_bin", "rate"],
        "persistence": ["run_id", "regularizer", "label", "target", "seed", "dim", "birth", "death"],
    }
    return {
        "structure": pd.DataFrame(runs),
        "heatmaps": pd.DataFrame(heat, columns=columns["heatmaps"]),
        "rate_maps": pd.DataFrame(maps, columns=columns["rate_maps"]),
        "persistence": pd.DataFrame(bars, columns=columns["persistence"]),
    }


smk = snakemake_job(globals())
if smk is not None:
    tables = aggregate(list(smk.input), smk.params.runs, (float(smk.params.first[0]), smk.params.first[1]))
    for name, table in tables.items():
        table.to_csv(smk.output[name], index=False)
