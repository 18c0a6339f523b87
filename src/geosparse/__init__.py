"""geosparse: moduli regularization and gradual magnitude pruning of RNNs.

Replication of Mackey et al., *Geometric sparsification in recurrent neural networks*
(arXiv:2406.06290). The public names below are imported lazily, so that light users of
the package (the workflow reading ``geosparse.config``) do not pay for importing torch.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "MagnitudePruner": "geosparse.pruning",
    "lottery_ticket_reinit": "geosparse.pruning",
    "scheduled_fraction": "geosparse.pruning",
    "ModuliRegularizer": "geosparse.regularizer",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'geosparse' has no attribute {name!r}")
