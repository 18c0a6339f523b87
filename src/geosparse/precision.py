"""Numeric precision of a training run (config key ``training.precision``).

- ``fp32``: float32 everywhere; TF32 off for CUDA matmuls and cuDNN (PyTorch turns
  cuDNN's TF32 on by default, so this is set explicitly).
- ``tf32``: float32 storage, TF32 tensor-core products on CUDA (Ampere and newer); on a
  CPU the same as fp32.
- ``bf16``: ``torch.autocast`` to bfloat16 for the forward pass (loss + penalty), with
  float32 master weights, optimizer state and masks; the loss is returned in float32,
  and pruned weights stay exact zeros (masks are applied to the float32 weights after
  each step). The final evaluation runs in float32. On CUDA, ``nn.RNN`` recurrences run
  explicitly in bfloat16 (``run_rnn``): autocast's cuDNN RNN wrapper casts to float16
  whatever the autocast dtype. Moduli distances are always float32 (``moduli``). The
  dtype the recurrence produced in training is recorded (``recurrence_dtype``).

The flags are process-wide; ``configure`` sets them and ``describe`` records what ran
(``metrics.json`` key ``precision``).
"""

from __future__ import annotations

import contextlib

import torch
from torch import _VF, nn

from geosparse.config import ConfigError

PRECISIONS = ("fp32", "tf32", "bf16")


def configure(precision: str) -> None:
    """Set torch's TF32 switches for ``precision`` (they only act on CUDA)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"config key 'training.precision': {precision!r}; allowed values: {list(PRECISIONS)}")
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def slow_cpu_warning(precision: str, device: torch.device) -> str | None:
    """A warning when ``bf16`` runs on a CPU without bfloat16 instructions (AVX512-BF16 or
    AMX): oneDNN then emulates the products, measured 11x slower per step than fp32
    (docs/training_performance.md); ``None`` when nothing is wrong."""
    if precision != "bf16" or device.type != "cpu":
        return None
    if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported():
        return None
    return (
        "training.precision bf16 on a CPU without AVX512-BF16 or AMX: its bfloat16 products are "
        "emulated, about 11x slower per step than fp32 (docs/training_performance.md); use fp32 here"
    )


def autocast(precision: str, device: torch.device | None) -> contextlib.AbstractContextManager:
    """The forward-pass context: bfloat16 autocast on ``device`` for ``bf16``, else nothing."""
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def explicit_rnn_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``run_rnn`` casts a recurrence to itself: bfloat16 under a bfloat16
    autocast on CUDA, else None (autocast, if any, decides)."""
    enabled = device_type == "cuda" and torch.is_autocast_enabled(device_type)
    return torch.bfloat16 if enabled and torch.get_autocast_dtype(device_type) == torch.bfloat16 else None


def rnn_in(rnn: nn.RNN, inputs: torch.Tensor, hx: torch.Tensor | None, dtype: torch.dtype) -> tuple:
    """``rnn(inputs, hx)`` computed in ``dtype`` with autocast off: inputs, state and
    weights cast from their (float32 master) values, gradients flowing back to them."""
    with torch.autocast(inputs.device.type, enabled=False):
        if hx is None:
            layers = rnn.num_layers * (2 if rnn.bidirectional else 1)
            hx = inputs.new_zeros(layers, inputs.size(0 if rnn.batch_first else 1), rnn.hidden_size)
        function = _VF.rnn_tanh if rnn.nonlinearity == "tanh" else _VF.rnn_relu
        weights = [w.to(dtype) for w in rnn._flat_weights]
        return function(
            inputs.to(dtype),
            hx.to(dtype),
            weights,
            rnn.bias,
            rnn.num_layers,
            float(rnn.dropout),
            rnn.training,
            rnn.bidirectional,
            rnn.batch_first,
        )


def run_rnn(rnn: nn.RNN, inputs: torch.Tensor, hx: torch.Tensor | None = None) -> tuple:
    """``rnn(inputs, hx)``, in bfloat16 for real under a bfloat16 autocast on CUDA
    (``explicit_rnn_dtype``); elsewhere exactly ``rnn(inputs, hx)``."""
    dtype = explicit_rnn_dtype(inputs.device.type)
    return rnn(inputs, hx) if dtype is None else rnn_in(rnn, inputs, hx, dtype)


def recurrence_dtype(model: nn.Module) -> str | None:
    """The dtype of the hidden states of ``model``'s last forward pass in training mode
    (what the recurrence ran in), as set by the model (``note_recurrence``); None if it
    has not run in training in this process."""
    return getattr(model, "recurrence_dtype", None)


def restore_recurrence_dtype(model: nn.Module, dtype: str | None) -> None:
    """Set what ``recurrence_dtype`` reports (a resumed run's, from its checkpoint)."""
    if dtype is not None:
        model.recurrence_dtype = dtype


def note_recurrence(model: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """Record ``hidden``'s dtype on ``model`` when it trains (``recurrence_dtype``)."""
    if model.training:
        model.recurrence_dtype = str(hidden.dtype).removeprefix("torch.")
    return hidden


def describe(precision: str, device: torch.device) -> dict:
    """What ran: the setting, the autocast dtype and torch's TF32 / matmul flags."""
    return {
        "setting": precision,
        "autocast_dtype": "bfloat16" if precision == "bf16" else None,
        "master_weights": "float32",
        "device_type": device.type,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
