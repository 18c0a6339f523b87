"""The moduli spaces by name: ambient dimension, kind and radius. Torch-free, so the
workflow can ask which spaces have neuron positions at parse time; the geometry itself
(sampling, distances) is ``geosparse.moduli``, which builds its registry from this table."""

from __future__ import annotations

from typing import NamedTuple


class SpaceSpec(NamedTuple):
    """``kind``: ``flat`` (periodic box), ``klein``, ``sphere``, ``euclidean`` or
    ``constant`` (no geometry: the coefficients are a constant); ``dim``: ambient
    dimension of a position (0 without geometry); ``radius``: arccos multiplier (spheres)."""

    name: str
    dim: int
    kind: str
    radius: float = 1.0


SPACE_SPECS: dict[str, SpaceSpec] = {
    spec.name: spec
    for spec in (
        SpaceSpec("torus", 2, "flat"),
        SpaceSpec("torus6", 6, "flat"),
        SpaceSpec("klein", 2, "klein"),
        SpaceSpec("circle", 2, "sphere", radius=5.0),
        SpaceSpec("sphere", 3, "sphere", radius=5.0),
        SpaceSpec("s3", 4, "sphere", radius=10.0),
        SpaceSpec("r3", 3, "euclidean"),
        SpaceSpec("standard", 0, "constant"),
        SpaceSpec("none", 0, "constant"),
    )
}


def has_positions(space: str) -> bool:
    """Whether neurons of ``space`` have positions (``standard`` and ``none`` do not)."""
    if space not in SPACE_SPECS:
        raise ValueError(f"unknown moduli space {space!r}; allowed values: {sorted(SPACE_SPECS)}")
    return SPACE_SPECS[space].kind != "constant"
