"""geosparse: moduli regularization and gradual magnitude pruning of RNNs.

Replication of Mackey et al., *Geometric sparsification in recurrent neural networks*
(arXiv:2406.06290).
"""

__version__ = "0.1.0"

from geosparse.pruning import MagnitudePruner, lottery_ticket_reinit, scheduled_fraction
from geosparse.regularizer import ModuliRegularizer

__all__ = [
    "MagnitudePruner",
    "ModuliRegularizer",
    "__version__",
    "lottery_ticket_reinit",
    "scheduled_fraction",
]
