"""Wires language modelling into the training driver (one BPTT window per step).

An epoch is one pass over the batched training stream; the hidden state is carried
(detached) from window to window and reset at the start of every epoch. After each
epoch the whole validation split is scored; if its loss did not improve on the best so
far, the driver divides the SGD learning rate by ``training.lr_decay`` (word_language_model;
``LanguageTask.lr_plateau_key``).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from geosparse.config import ConfigError
from geosparse.data.corpus import load_corpus
from geosparse.pruning import w_hh_sparsity
from geosparse.regularizer import from_config as regularizer_from_config
from geosparse.runio import derive_seed, finite_or_none
from geosparse.tasks.language import (
    WordRNN,
    batchify,
    perplexity,
    token_counts,
    window,
    window_starts,
)


def layer_regularizers(config: dict, seed: int) -> nn.ModuleList:
    """One moduli regularizer per RNN layer (own neuron positions, seeded from ``seed``)."""
    n_hidden = config["model"]["n_hidden"]
    return nn.ModuleList(
        regularizer_from_config(config["regularizer"], n_hidden, derive_seed(seed, f"moduli-l{layer}"))
        for layer in range(config["model"]["n_layers"])
    )


def language_penalty(model: WordRNN, regularizers: nn.ModuleList, config: dict) -> torch.Tensor:
    """lam * (moduli term on every W_hh + mean|W_ih| + mean|embedding| + mean|decoder|).

    ``regularizers[l]`` scores layer l's W_hh (it carries lam as its ``strength``); the
    L1 means are added when ``penalty.l1_other_weights`` is set. A 0-d tensor.
    """
    total = sum(reg.reg(w) for reg, w in zip(regularizers, model.recurrent_weights(), strict=True))
    strength = config["regularizer"]["strength"]
    if config["penalty"]["l1_other_weights"] and strength > 0:
        others = [*model.input_weights(), model.encoder.weight, model.decoder.weight]
        total = total + strength * sum(w.abs().mean() for w in others)
    return total


class LanguageTask:
    """Corpus, per-layer moduli regularizers and stream state of one run (``Task``)."""

    task_loss_key = "task_loss"
    lr_plateau_key = "val_loss"  # word_language_model: lr / lr_decay when it does not improve

    def __init__(self, config: dict, seed: int, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        training = config["training"]
        corpus = load_corpus(config["data"])
        self.data_description = corpus.description
        self.chance_loss = math.log(len(corpus.vocab))  # uniform next-token guess (divergence rule)
        self.vocab_size = len(corpus.vocab)
        self.bptt = training["bptt"]
        self.data = {
            "train": batchify(corpus.splits["train"], training["batch_size"]).to(device),
            "valid": batchify(corpus.splits["valid"], training["eval_batch_size"]).to(device),
            "test": batchify(corpus.splits["test"], training["eval_batch_size"]).to(device),
        }
        for split, data in self.data.items():
            if data.size(0) < 2:
                raise ConfigError(
                    f"config key 'data.max_tokens.{split}': too few tokens for one batch of {data.size(1)} columns"
                )
        self.steps_per_epoch = len(window_starts(self.data["train"].size(0), self.bptt))
        self.regularizers = layer_regularizers(config, seed).to(device)
        self.start_phase("sparse")  # evaluate() works without the driver (load_finished)

    def build_model(self) -> WordRNN:
        model = self.config["model"]
        return WordRNN(
            self.vocab_size,
            model["embedding_dim"],
            model["n_hidden"],
            model["n_layers"],
            model["nonlinearity"],
            model["dropout"],
        )

    def start_phase(self, phase: str) -> None:
        self.cursor, self.hidden = 0, None
        self.val_history: list[float] = []

    def optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.config["training"]["lr"])

    def train_step(self, model: WordRNN) -> dict[str, torch.Tensor]:
        if self.cursor >= self.steps_per_epoch:  # a new pass: fresh hidden state
            self.cursor, self.hidden = 0, None
        inputs, targets = window(self.data["train"], self.cursor * self.bptt, self.bptt)
        log_probs, hidden = model(inputs, self.hidden)
        self.hidden = hidden.detach()
        self.cursor += 1
        nll, correct = token_counts(log_probs, targets)
        task_loss = nll / targets.numel()
        penalty = language_penalty(model, self.regularizers, self.config)
        return {
            "loss": task_loss + penalty,
            "task_loss": task_loss.detach(),
            "penalty": penalty.detach(),
            "accuracy": correct / targets.numel(),
        }

    @torch.no_grad()
    def score(self, model: WordRNN, split: str) -> dict[str, float]:
        """Loss (nats/token), perplexity and next-token accuracy of ``model`` over a whole split."""
        model.eval()
        data, hidden = self.data[split], None
        nll_sum = correct_sum = tokens = 0
        for start in window_starts(data.size(0), self.bptt):
            inputs, targets = window(data, start, self.bptt)
            log_probs, hidden = model(inputs, hidden)
            nll, correct = token_counts(log_probs, targets)
            nll_sum, correct_sum = nll_sum + float(nll), correct_sum + int(correct)
            tokens += targets.numel()
        loss = nll_sum / tokens
        return {
            "loss": finite_or_none(loss),
            "ppl": perplexity(loss),
            "accuracy": correct_sum / tokens,
            "tokens": tokens,
        }

    def validate(self, model: WordRNN) -> dict[str, float | None]:
        """Validation loss, perplexity and accuracy (the driver's lr plateau reads the loss)."""
        valid = self.score(model, "valid")
        self.val_history.append(valid["loss"] if valid["loss"] is not None else float("inf"))
        return {"val_loss": valid["loss"], "val_ppl": valid["ppl"], "val_accuracy": valid["accuracy"]}

    @torch.no_grad()
    def evaluate(self, model: WordRNN) -> dict:
        """Test and validation scores of the (sparse) model and the validation-loss
        trajectory of this phase (the stability claim)."""
        test, valid = self.score(model, "test"), self.score(model, "valid")
        w_hh = model.recurrent_weights()
        history = [finite_or_none(v) for v in self.val_history]
        return {
            "data": self.data_description,
            "test_loss": test["loss"],
            "test_ppl": test["ppl"],
            "test_accuracy": test["accuracy"],
            "test_tokens": test["tokens"],
            "val_loss": valid["loss"],
            "val_ppl": valid["ppl"],
            "val_loss_history": history,
            "val_loss_increases": sum(1 for a, b in itertools.pairwise(self.val_history) if not b <= a),
            "W_hh_sparsity": w_hh_sparsity(w_hh),
            "vocab_size": self.vocab_size,
        }

    def state_dict(self) -> dict:
        return {
            "cursor": self.cursor,
            "hidden": self.hidden,
            "val_history": list(self.val_history),
            "regularizers": self.regularizers.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        hidden = state["hidden"]
        self.cursor, self.hidden = state["cursor"], None if hidden is None else hidden.to(self.device)
        self.val_history = list(state["val_history"])
        self.load_regularizers(state)

    def load_regularizers(self, state: dict) -> None:
        self.regularizers.load_state_dict(state["regularizers"])
