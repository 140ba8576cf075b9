"""The optimiser of the authors' Table-4 code: BERT's AdamW, without bias correction.

    m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
    p <- p - lr (m / (sqrt(v) + eps) + wd p)

torch's AdamW divides m and v by (1 - b^t) ("bias correction"); BERT's optimiser, which the
authors' code base copied (protocol.md §3), does not, so its first steps are up to
sqrt(1 - b2^t) / (1 - b1^t) ~ 3x larger early on and equal after a few thousand steps. Weight
decay is decoupled and multiplied by lr, as in torch's AdamW; which parameters decay is decided by
the parameter groups (the trainer gives none to biases and norms, as the authors did).
"""

from __future__ import annotations

import torch


class BertAdamW(torch.optim.Optimizer):
    """AdamW without bias correction (BERT, SAR-Check env A). ``eps`` defaults to BERT's 1e-6."""

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6,
                 weight_decay: float = 0.0):
        if lr <= 0 or eps <= 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"BertAdamW: bad settings lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if not self.state[p]:
                    self.state[p]["exp_avg"] = torch.zeros_like(p)
                    self.state[p]["exp_avg_sq"] = torch.zeros_like(p)
            m = [self.state[p]["exp_avg"] for p in params]
            v = [self.state[p]["exp_avg_sq"] for p in params]
            b1, b2 = group["betas"]
            torch._foreach_mul_(m, b1)
            torch._foreach_add_(m, grads, alpha=1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(m, denom)
            if group["weight_decay"]:
                torch._foreach_add_(update, params, alpha=group["weight_decay"])
            torch._foreach_add_(params, update, alpha=-group["lr"])
        return loss
