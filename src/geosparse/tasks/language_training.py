"""Wires language modelling into the training driver (one BPTT window per step).

An epoch is one pass over the batched training stream; the hidden state is carried
(detached) from window to window and reset at the start of every epoch. After each
epoch the whole validation split is scored; if its loss did not improve on the best so
far, the SGD learning rate is divided by ``training.lr_decay`` (word_language_model).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from geosparse.data.corpus import load_corpus
from geosparse.pruning import MagnitudePruner
from geosparse.regularizer import from_config as regularizer_from_config
from geosparse.runio import derive_seed
from geosparse.tasks.language import (
    WordRNN,
    batchify,
    perplexity,
    token_counts,
    window,
    window_starts,
)


def _finite(value: float) -> float | None:
    """JSON-safe: ``None`` for NaN/inf."""
    return value if math.isfinite(value) else None


def layer_regularizers(config: dict, seed: int) -> nn.ModuleList:
    """One moduli regularizer per RNN layer (own neuron positions, seeded from ``seed``)."""
    n_hidden = config["model"]["n_hidden"]
    return nn.ModuleList(
        regularizer_from_config(config["regularizer"], n_hidden,
                                derive_seed(seed, f"moduli-l{layer}"))
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


class LanguageRun:
    """Corpus, model, per-layer moduli regularizers, pruner and stream state of one run."""

    def __init__(self, config: dict, seed: int, device: torch.device) -> None:
        self.config, self.seed, self.device = config, seed, device
        training, model_cfg = config["training"], config["model"]
        corpus = load_corpus(config["data"])
        self.data_description = corpus.description
        self.chance_loss = math.log(len(corpus.vocab))  # uniform next-token guess (divergence rule)
        self.task_loss_key = "task_loss"
        self.vocab_size = len(corpus.vocab)
        self.bptt = training["bptt"]
        self.data = {
            "train": batchify(corpus.splits["train"], training["batch_size"]).to(device),
            "valid": batchify(corpus.splits["valid"], training["eval_batch_size"]).to(device),
            "test": batchify(corpus.splits["test"], training["eval_batch_size"]).to(device),
        }
        for split, data in self.data.items():
            if data.size(0) < 2:
                raise ValueError(f"config key 'data.max_tokens.{split}': too few tokens for one "
                                 f"batch of {data.size(1)} columns")
        self.steps_per_epoch = len(window_starts(self.data["train"].size(0), self.bptt))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "model-init"))
            self.model = WordRNN(
                self.vocab_size, model_cfg["embedding_dim"], model_cfg["n_hidden"],
                model_cfg["n_layers"], model_cfg["nonlinearity"], model_cfg["dropout"],
            )
        self.model.to(device)
        self.regularizers = layer_regularizers(config, seed).to(device)
        self.pruner = MagnitudePruner(self.model.prunable(config["pruning"]["tensors"]),
                                      scope=config["pruning"]["scope"])
        self.trainable: list[nn.Parameter] = [*self.model.parameters(),
                                              *self.regularizers.parameters()]
        self.start_phase("sparse")

    def start_phase(self, phase: str) -> None:
        self.cursor, self.hidden = 0, None
        self.best_val: float | None = None
        self.val_history: list[float] = []

    def new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.trainable, lr=self.config["training"]["lr"])

    def train_step(self) -> dict[str, torch.Tensor]:
        if self.cursor >= self.steps_per_epoch:  # a new pass: fresh hidden state
            self.cursor, self.hidden = 0, None
        inputs, targets = window(self.data["train"], self.cursor * self.bptt, self.bptt)
        log_probs, hidden = self.model(inputs, self.hidden)
        self.hidden = hidden.detach()
        self.cursor += 1
        nll, correct = token_counts(log_probs, targets)
        task_loss = nll / targets.numel()
        penalty = language_penalty(self.model, self.regularizers, self.config)
        return {"loss": task_loss + penalty, "task_loss": task_loss.detach(),
                "penalty": penalty.detach(), "accuracy": correct / targets.numel()}

    def after_step(self) -> None:
        for regularizer in self.regularizers:
            regularizer.project_()

    @torch.no_grad()
    def score(self, split: str) -> dict[str, float]:
        """Loss (nats/token), perplexity and next-token accuracy over a whole split."""
        self.model.eval()
        data, hidden = self.data[split], None
        nll_sum = correct_sum = tokens = 0
        for start in window_starts(data.size(0), self.bptt):
            inputs, targets = window(data, start, self.bptt)
            log_probs, hidden = self.model(inputs, hidden)
            nll, correct = token_counts(log_probs, targets)
            nll_sum, correct_sum = nll_sum + float(nll), correct_sum + int(correct)
            tokens += targets.numel()
        loss = nll_sum / tokens
        return {"loss": _finite(loss), "ppl": perplexity(loss), "accuracy": correct_sum / tokens,
                "tokens": tokens}

    def end_epoch(self, optimizer: torch.optim.Optimizer) -> dict[str, float]:
        """Validation loss; divide the lr by ``lr_decay`` if it did not improve."""
        valid = self.score("valid")
        loss = valid["loss"] if valid["loss"] is not None else float("inf")
        self.val_history.append(loss)
        if self.best_val is None or loss < self.best_val:
            self.best_val = loss
        else:
            for group in optimizer.param_groups:
                group["lr"] /= self.config["training"]["lr_decay"]
        return {"val_loss": valid["loss"], "val_ppl": valid["ppl"],
                "val_accuracy": valid["accuracy"], "lr": optimizer.param_groups[0]["lr"]}

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Test and validation scores of the current (sparse) model, measured sparsity,
        and the validation-loss trajectory of this phase (the stability claim)."""
        test, valid = self.score("test"), self.score("valid")
        w_hh = self.model.recurrent_weights()
        report = self.pruner.report()
        history = [_finite(v) for v in self.val_history]
        return {
            "data": self.data_description,
            "test_loss": test["loss"],
            "test_ppl": test["ppl"],
            "test_accuracy": test["accuracy"],
            "test_tokens": test["tokens"],
            "val_loss": valid["loss"],
            "val_ppl": valid["ppl"],
            "val_loss_history": history,
            "val_loss_increases": sum(
                1 for a, b in itertools.pairwise(self.val_history) if not b <= a),
            "W_hh_sparsity": sum(int((w == 0).sum()) for w in w_hh) / sum(w.numel() for w in w_hh),
            "sparsity": report["global"]["sparsity"],
            "sparsity_report": report,
            "vocab_size": self.vocab_size,
        }

    def state_dict(self) -> dict:
        return {"cursor": self.cursor, "hidden": self.hidden, "best_val": self.best_val,
                "val_history": list(self.val_history),
                "regularizers": self.regularizers.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.cursor, self.hidden = state["cursor"], state["hidden"]
        self.best_val, self.val_history = state["best_val"], list(state["val_history"])
        self.regularizers.load_state_dict(state["regularizers"])
