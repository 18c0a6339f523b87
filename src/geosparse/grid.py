"""What the workflow asks the package about one run of a grid (workflow/rules/common.smk).

The workflow names a run by (task, named regularizer, model size, target, seed) and passes it to
``geosparse train`` as ``--set`` assignments; the domain rules that turn a grid cell into
those assignments live here, not in the workflow.
"""

from __future__ import annotations

import json
from typing import Any

from geosparse.spaces import SPACE_SPECS
from geosparse.spaces import has_positions as space_has_positions

RUN_ID = "{regularizer}-n{size}-t{target}-s{seed}"
"""A run's name in a grid (its folder ``results/<grid>/runs/<task>/<run-id>/``): named
regularizer, model size (Ng, ``model.n_hidden``), target sparsity (``str(target)``), seed."""


def run_id(regularizer: str, size: int, target: float, seed: int) -> str:
    """``RUN_ID`` of one run, e.g. ``torus_dog-n512-t0.9-s0``."""
    return RUN_ID.format(regularizer=regularizer, size=size, target=target, seed=seed)


def has_positions(regularizer: dict) -> bool:
    """Whether a (resolved) ``regularizer`` section places neurons on a moduli space, i.e.
    has positions to order, export and plot (``standard`` and ``none`` do not)."""
    return space_has_positions(regularizer["space"])


def run_assignments(base_config: dict, sets: dict[str, Any], n_hidden: int, target: float, lottery: bool) -> list[str]:
    """``key=value`` assignments (``--set``) of one grid run: the named regularizer's
    ``sets``, the model size where it differs from the base config's (``model.n_hidden``,
    so a grid of one size passes the same assignments as before sizes existed), the
    pruning target and the lottery flag.

    A space without neuron positions has no embedding to learn: where the base config
    learns it (adding: ``learn_embedding: true``), such a run also sets
    ``regularizer.learn_embedding=false`` (the regularizer refuses the combination)."""
    values = dict(sets)
    regularizer = {
        **base_config["regularizer"],
        "space": values.get("regularizer.space", base_config["regularizer"]["space"]),
    }
    known = regularizer["space"] in SPACE_SPECS  # an unknown one is named by the run schema next
    if known and not has_positions(regularizer) and base_config["regularizer"]["learn_embedding"]:
        values["regularizer.learn_embedding"] = False
    if n_hidden != base_config["model"]["n_hidden"]:
        values["model.n_hidden"] = n_hidden
    values["pruning.target"] = float(target)
    values["lottery_ticket.enabled"] = lottery
    return [f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in values.items()]
