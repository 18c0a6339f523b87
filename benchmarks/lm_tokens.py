"""Language-model training throughput (tokens/s) at the default and paper sizes.

Times complete training steps - forward, NLL, moduli penalty, backward, gradient
clipping, SGD step, mask application - on random tokens with WikiText-2's vocabulary
size, using the model, penalty and pruner of ``geosparse train language``. The masks
are at the config's target sparsity (unstructured, so dense kernels: the cost does not
drop with sparsity). Prints one line per scale and the projected time per epoch over
all of WikiText-2 train.

    OMP_NUM_THREADS=1 python benchmarks/lm_tokens.py [--scales default paper] [--steps 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from geosparse.config import resolve
from geosparse.pruning import MagnitudePruner
from geosparse.tasks.language import WordRNN
from geosparse.tasks.language_training import language_penalty, layer_regularizers

WIKITEXT2_VOCAB = 33278
WIKITEXT2_TRAIN_TOKENS = 2088628
CONFIGS = Path(__file__).resolve().parents[1] / "config" / "language"


def tokens_per_second(config: dict, steps: int, device: torch.device) -> float:
    """Training tokens per second (batch_size * bptt per step), after one warm-up step."""
    m, t = config["model"], config["training"]
    model = WordRNN(
        WIKITEXT2_VOCAB, m["embedding_dim"], m["n_hidden"], m["n_layers"], m["nonlinearity"], m["dropout"]
    ).to(device)
    regularizers = layer_regularizers(config, seed=0).to(device)
    pruner = MagnitudePruner(model.prunable(config["pruning"]["tensors"]))
    pruner.prune_to(config["pruning"]["target"])
    optimizer = torch.optim.SGD(model.parameters(), lr=t["lr"])
    generator = torch.Generator().manual_seed(0)
    shape = (t["bptt"] + 1, t["batch_size"])
    tokens = torch.randint(WIKITEXT2_VOCAB, shape, generator=generator).to(device)
    hidden = None

    def step() -> None:
        nonlocal hidden
        log_probs, hidden = model(tokens[:-1], hidden)
        hidden = hidden.detach()
        targets = tokens[1:].reshape(-1)
        loss = nn.functional.nll_loss(log_probs.reshape(-1, WIKITEXT2_VOCAB), targets)
        loss = loss + language_penalty(model, regularizers, config)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        optimizer.step()
        pruner.apply_()

    step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * t["bptt"] * t["batch_size"] / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", nargs="+", default=["default", "paper"])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per scale")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__}")
    for scale in args.scales:
        config = resolve(CONFIGS / f"{scale}.yaml", "language")
        m = config["model"]
        rate = tokens_per_second(config, args.steps, device)
        print(
            f"{scale}: E={m['embedding_dim']} H={m['n_hidden']} layers={m['n_layers']} "
            f"V={WIKITEXT2_VOCAB}: {rate:,.0f} tokens/s, "
            f"{WIKITEXT2_TRAIN_TOKENS / rate / 60:.1f} min per full WikiText-2 epoch"
        )


if __name__ == "__main__":
    main()
