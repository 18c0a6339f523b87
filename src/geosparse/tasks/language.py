"""Word-level language modelling (the paper, "Language modelling"), PyTorch
word_language_model style: embedding -> Elman RNN (tanh) -> linear decoder -> log-softmax.

Tensors are time-major. Token streams are int64 ``(n_tokens,)``; batched streams are
``(rows, batch)`` where column b is the b-th contiguous slice of the stream; a BPTT
window is ``rows[start : start + bptt]`` and its targets are the same window shifted by
one row. Losses are in nats per token.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from geosparse.precision import note_recurrence, run_rnn

INIT_RANGE = 0.1
"""Embedding and decoder weights start uniform in [-0.1, 0.1] (word_language_model)."""
GROUPS = ("embedding", "W_ih", "W_hh", "decoder")
"""Prunable weight groups; W_ih and W_hh stand for every layer's matrix."""


class UniformEmbedding(nn.Embedding):
    """Embedding whose (re-)initialisation is uniform in [-INIT_RANGE, INIT_RANGE].

    Putting the init in ``reset_parameters`` makes the lottery-ticket re-initialisation
    (which calls ``reset_parameters`` on every module) draw from the same distribution.
    """

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, -INIT_RANGE, INIT_RANGE)


class UniformLinear(nn.Linear):
    """Linear layer initialised with uniform weights in [-INIT_RANGE, INIT_RANGE], zero bias."""

    def reset_parameters(self) -> None:
        nn.init.uniform_(self.weight, -INIT_RANGE, INIT_RANGE)
        if self.bias is not None:
            nn.init.zeros_(self.bias)


class WordRNN(nn.Module):
    """Embedding(V -> E), ``n_layers``-layer Elman RNN (E -> H), decoder Linear(H -> V).

    Args:
        vocab_size: V. embedding_dim: E. n_hidden: H. n_layers: stacked RNN layers.
        nonlinearity: ``tanh`` (paper) or ``relu``. dropout: on the embedding, between
            layers and on the RNN output (paper: 0).
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        n_hidden: int,
        n_layers: int = 1,
        nonlinearity: str = "tanh",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.encoder = UniformEmbedding(vocab_size, embedding_dim)
        self.rnn = nn.RNN(
            embedding_dim, n_hidden, n_layers, nonlinearity=nonlinearity, dropout=dropout if n_layers > 1 else 0.0
        )
        self.decoder = UniformLinear(n_hidden, vocab_size)
        self.drop = nn.Dropout(dropout)
        self.n_layers = n_layers

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities ``(T, B, V)`` of the next token, and the last hidden ``(L, B, H)``.

        ``tokens``: int64 ``(T, B)``; ``hidden``: ``(L, B, H)`` or ``None`` (zeros).
        """
        output, hidden = run_rnn(self.rnn, self.drop(self.encoder(tokens)), hidden)
        note_recurrence(self, output)
        return torch.log_softmax(self.decoder(self.drop(output)), dim=-1), hidden

    def recurrent_weights(self) -> list[nn.Parameter]:
        """W_hh of every layer, each ``(H, H)``."""
        return [getattr(self.rnn, f"weight_hh_l{layer}") for layer in range(self.n_layers)]

    def input_weights(self) -> list[nn.Parameter]:
        """W_ih of every layer: ``(H, E)`` for layer 0, ``(H, H)`` above."""
        return [getattr(self.rnn, f"weight_ih_l{layer}") for layer in range(self.n_layers)]

    def prunable(self, groups: list[str] | tuple[str, ...] = GROUPS) -> dict[str, nn.Parameter]:
        """Weight matrices of the chosen ``groups``, named ``embedding``, ``W_ih_l0``, ...."""
        named: dict[str, nn.Parameter] = {}
        for group in groups:
            if group == "embedding":
                named["embedding"] = self.encoder.weight
            elif group == "decoder":
                named["decoder"] = self.decoder.weight
            elif group in ("W_ih", "W_hh"):
                weights = self.input_weights() if group == "W_ih" else self.recurrent_weights()
                named.update({f"{group}_l{layer}": w for layer, w in enumerate(weights)})
            else:
                raise ValueError(f"unknown weight group {group!r}; allowed values: {list(GROUPS)}")
        return named


def batchify(tokens: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Cut a stream ``(N,)`` into ``batch_size`` contiguous columns: ``(N // batch_size, B)``.

    The ``N % batch_size`` trailing tokens are dropped (as in word_language_model).
    """
    rows = tokens.numel() // batch_size
    return tokens[: rows * batch_size].view(batch_size, rows).t().contiguous()


def window_starts(rows: int, bptt: int) -> range:
    """First row of every BPTT window of a ``(rows, B)`` stream (the last may be shorter)."""
    return range(0, max(rows - 1, 0), bptt)


def window(data: torch.Tensor, start: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``data[start : start + T]`` and targets (shifted by one row), both ``(T, B)``.

    ``T = min(bptt, rows - 1 - start)``.
    """
    length = min(bptt, data.size(0) - 1 - start)
    return data[start : start + length], data[start + 1 : start + 1 + length]


def token_counts(log_probs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL (nats) and number of correct argmax predictions over ``targets (T, B)``.

    ``log_probs``: ``(T, B, V)``. Both results are 0-d tensors.
    """
    flat = log_probs.reshape(-1, log_probs.size(-1))
    nll = nn.functional.nll_loss(flat, targets.reshape(-1), reduction="sum")
    correct = (flat.argmax(dim=-1) == targets.reshape(-1)).sum()
    return nll, correct


def perplexity(loss: float) -> float | None:
    """``exp(loss)`` for a loss in nats/token; ``None`` if not finite or too large for a float."""
    if not math.isfinite(loss):
        return None
    try:
        return math.exp(loss)
    except OverflowError:
        return None
