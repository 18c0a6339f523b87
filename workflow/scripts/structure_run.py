"""Connectivity structure and hidden manifold of one finished navigation run ->
<run>/structure.json.

Loads the final model (``geosparse.runs.load_finished``: learned positions included) and
writes: ``locality`` and the geometry-ordered |W_hh| heatmap (``geosparse.structure``,
against the run's own positions or, without any, the reference torus positions of its
seed: ``own_positions``), the rate maps of the ``RATE_MAP_UNITS`` hidden units with the
most spatial variance, and the persistence diagrams of the population point cloud with
the long-lived bar counts and the threshold (``geosparse.topology``). A run that did not
complete gets its status and nothing else.
"""

import math
from pathlib import Path

import torch
from tables_io import snakemake_job

from geosparse.files import read_json
from geosparse.pruning import w_hh_sparsity
from geosparse.runio import derive_seed, finite_or_none, versions, write_json
from geosparse.runs import load_finished
from geosparse.structure import REFERENCE_SPACE, locality, ordered_magnitude, positions_of
from geosparse.tasks.navigation import TrajectoryGenerator
from geosparse.topology import (
    LONG_LIVED_FACTOR,
    finite_or_none_pairs,
    long_lived,
    persistence,
    population_cloud,
    rate_maps,
)

RATE_MAP_UNITS = 6
"""Hidden units per run whose rate maps are kept (highest variance over position)."""


def _json_map(values: torch.Tensor) -> list[list[float | None]]:
    return [[None if math.isnan(v) else round(v, 6) for v in row] for row in values.tolist()]


def analyse(run_dir: Path, settings: dict) -> dict:
    """``structure.json`` of one run folder."""
    metrics = read_json(run_dir / "metrics.json")
    if metrics["status"] != "completed":
        return {"status": metrics["status"]}
    run = load_finished(run_dir, task="navigation").run
    positions, space, own = positions_of(run.regularizer, run.seed)
    w_hh = run.model.rnn.weight_hh_l0.detach().cpu()
    config = run.config
    traj, pc = config["trajectory"], config["place_cells"]
    stream = TrajectoryGenerator(
        run.task.place_cells,
        traj["sequence_length"],
        traj["batch_size"],
        seed=derive_seed(run.seed, "structure"),
        chunk=traj["chunk"],
    )
    maps, occupancy = rate_maps(
        run.model, stream, settings["batches"], settings["bins"], (pc["box_width"], pc["box_height"])
    )
    flat = maps.reshape(maps.shape[0], -1)
    variance = flat[:, occupancy.flatten() > 0].var(dim=1)  # over visited bins
    units = torch.argsort(variance, descending=True, stable=True)[:RATE_MAP_UNITS].tolist()
    cloud = population_cloud(maps, settings["pca_dims"])
    diagrams = persistence(cloud, settings["max_dim"], settings["n_perm"])
    counts, threshold = long_lived(diagrams)
    return {
        "status": "completed",
        "space": space.name,
        "own_positions": own,
        "reference_space": None if own else REFERENCE_SPACE,
        "locality": finite_or_none(locality(w_hh, positions, space)),  # NaN: no off-diagonal weight left
        "W_hh_sparsity": w_hh_sparsity([w_hh]),
        "heatmap": _json_map(ordered_magnitude(w_hh, positions, space, settings["heatmap_size"])),
        "rate_maps": {str(u): _json_map(maps[u]) for u in units},
        "occupancy_min": int(occupancy.min()),
        "points": int(cloud.shape[0]),
        "persistence": [finite_or_none_pairs(d) for d in diagrams],
        "long_lived": counts,
        "long_lived_threshold": threshold,
        "long_lived_rule": f"lifetime > {LONG_LIVED_FACTOR:g} x the longest finite H0 bar; H0 counts the infinite bar",
        "settings": settings,
        "versions": versions("ripser"),
    }


smk = snakemake_job(globals())
if smk is not None:
    torch.set_num_threads(smk.threads)
    write_json(smk.output[0], analyse(Path(smk.input.metrics).parent, dict(smk.params.settings)))
