"""A one-layer ReLU RNN without biases whose backward pass batches over time.

``torch.nn.RNN`` on a CPU runs its recurrence as T separate autograd nodes, so its
backward computes the recurrent weight gradient as T small products (``dz_t^T h_{t-1}``,
a ``(Ng, B) x (B, Ng)`` product each) that autograd then adds up, and it stacks and
unbinds the T hidden states. ``relu_rnn`` is one autograd node instead: the forward
pass computes the input projection for all T at once and writes each step into a
preallocated ``(T, B, Ng)`` buffer (the same products and additions, in the same order,
as ``nn.RNN`` on a CPU: bit-identical outputs where measured); the backward pass runs the
sequential part (``dz_t = (g_t + dz_{t+1} W_hh) * [h_t > 0]``) with one fused product per
step, and then forms ``dW_hh`` and ``dW_ih`` as ONE product each over all T steps. The
gradients equal ``nn.RNN``'s up to float32 rounding (the sums run in a different order;
tests/test_recurrence.py). Measured gain: docs/training_performance.md.

The code is device-neutral, but on CUDA cuDNN's fused RNN is the better choice, and
autocast's casts are not applied inside it: ``NavigationRNN`` uses it only on a CPU
without autocast (``batched_recurrence_applies``).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable


def _relu_backward(grad: torch.Tensor, output: torch.Tensor, into: torch.Tensor) -> None:
    """``grad`` times the ReLU's derivative at ``output`` (0 where ``output <= 0``), written
    to ``into`` (which may be ``grad``): the kernel of ``nn.RNN``'s ReLU backward (8x
    faster here than ``masked_fill_`` with a bool mask, same bits)."""
    torch.ops.aten.threshold_backward.grad_input(grad, output, 0, grad_input=into)


class _ReluRNN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
        steps, batch, _ = x.shape
        n = w_hh.shape[0]
        # input projection of all steps at once, into the output buffer (as nn.RNN on a CPU)
        out = torch.mm(x.reshape(steps * batch, -1), w_ih.t()).view(steps, batch, n)
        product = torch.empty_like(h0)
        w_hh_t = w_hh.t()
        h = h0
        for t in range(steps):
            torch.mm(h, w_hh_t, out=product)
            h = out[t].add_(product).relu_()
        ctx.save_for_backward(x, h0, w_ih, w_hh, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        x, h0, w_ih, w_hh, out = ctx.saved_tensors
        steps, batch, n = out.shape
        # dz: the gradient at the pre-activations, (T, B, Ng); grad_out is read, never copied
        dz = torch.empty_like(out)
        _relu_backward(grad_out[-1], out[-1], into=dz[-1])
        for t in range(steps - 2, -1, -1):
            torch.addmm(grad_out[t], dz[t + 1], w_hh, out=dz[t])
            _relu_backward(dz[t], out[t], into=dz[t])
        flat = dz.view(steps * batch, n)
        grad_h0 = torch.mm(dz[0], w_hh)
        # dW_hh = sum_t dz_t^T h_{t-1}: one product over steps 1..T-1, plus step 0 (h0)
        # (out-of-place addmm with out=: FlopCounterMode does not count in-place addmm_)
        grad_w_hh = torch.mm(dz[0].t(), h0)
        torch.addmm(grad_w_hh, flat[batch:].t(), out[:-1].reshape((steps - 1) * batch, n), out=grad_w_hh)
        x_flat = x.reshape(steps * batch, -1)
        # as (x^T dz)^T: 15x faster than dz^T x for the (Ng, T B) x (T B, 2) shape here
        grad_w_ih = torch.mm(x_flat.t(), flat).t()
        grad_x = torch.mm(flat, w_ih).view_as(x) if ctx.needs_input_grad[0] else None
        return grad_x, grad_h0, grad_w_ih, grad_w_hh


def relu_rnn(x: torch.Tensor, h0: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor) -> torch.Tensor:
    """Hidden states ``(T, B, H)`` of ``h_t = relu(x_t W_ih^T + h_{t-1} W_hh^T)``.

    ``x``: ``(T, B, I)``; ``h0``: ``(B, H)``; ``w_ih``: ``(H, I)``; ``w_hh``: ``(H, H)``.
    Equals ``nn.RNN(I, H, nonlinearity="relu", bias=False)(x, h0[None])[0]``.
    """
    if x.dim() != 3 or h0.shape != (x.shape[1], w_hh.shape[0]):
        raise ValueError(f"expected x (T, B, I) and h0 (B, H); got {tuple(x.shape)} and {tuple(h0.shape)}")
    return _ReluRNN.apply(x, h0, w_ih, w_hh)


def batched_recurrence_applies(rnn: nn.RNN, x: torch.Tensor) -> bool:
    """Whether ``relu_rnn`` can stand in for ``rnn`` on ``x`` and pays: a one-layer,
    unidirectional, bias-free ReLU RNN on a CPU, outside autocast."""
    return (
        x.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
        and rnn.nonlinearity == "relu"
        and rnn.num_layers == 1
        and not rnn.bidirectional
        and not rnn.bias
        and not rnn.batch_first
    )
