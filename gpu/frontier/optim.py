"""AdamW over stacked parameters with one learning rate per run (see :mod:`mqarkit.gpu.frontier.train`).

A stacked parameter ``(R, ...)`` gets run ``r``'s rate on its slice ``[r]`` (times the padding mask, where the family
pads it); a parameter that belongs to one run only (a plain module's, :meth:`StackedHybrid.parameter_runs`) gets that
run's rate everywhere.
"""

from __future__ import annotations

import torch

from mqarkit.gpu.frontier.kernels.fused_adamw import adamw_fused
from mqarkit.gpu.frontier.model import StackedHybrid


class StackedAdamW:
    """AdamW over stacked parameters with one learning rate per run (see the module docstring).

    Every quantity that changes from step to step lives in a device tensor (the step count ``t``, the schedule factor,
    the per-run learning rates, updated in place), so one :meth:`step` can be recorded in a CUDA graph and replayed.
    """

    def __init__(
        self,
        model: StackedHybrid,
        lrs: torch.Tensor,
        *,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        if lrs.shape != (model.runs,):
            raise ValueError(f"lrs: needs shape ({model.runs},), got {tuple(lrs.shape)}")
        if not bool((lrs > 0).all()):
            raise ValueError("lrs: every learning rate must be > 0")
        self.names = [n for n, _ in model.named_parameters()]
        self.params = [p for _, p in model.named_parameters()]
        self.masks = model.gradient_masks()
        self.owner = model.parameter_runs()  # parameters of one run only (a plain module's): their run
        device = self.params[0].device
        self.base = lrs.to(device, torch.float32)
        self.wd, self.betas, self.eps = weight_decay, betas, eps
        self.t = torch.zeros((), dtype=torch.float64, device=device)  # steps taken (float64: exact 1 − β^t)
        self.neg_factor = torch.full((), -1.0, dtype=torch.float32, device=device)  # −(schedule factor)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.lr_full: list[torch.Tensor] = []
        self.set_active(torch.ones(model.runs, dtype=torch.bool, device=device))

    def set_active(self, active: torch.Tensor) -> None:
        """Freeze the runs where ``active`` (R,) is False (their learning rate becomes 0), in place."""
        lr = self.base * active.to(self.base.device).float()
        fulls = []
        for name, p in zip(self.names, self.params):
            if name in self.owner:  # one run's parameter: that run's rate everywhere
                full = lr[self.owner[name]].expand_as(p).clone()
            else:  # stacked: run r's rate on the slice [r]
                full = lr.view(-1, *([1] * (p.dim() - 1))).expand_as(p).clone()
            if name in self.masks:
                full = full * self.masks[name]
            fulls.append(full)
        if self.lr_full:
            torch._foreach_copy_(self.lr_full, fulls)
        else:
            self.lr_full = fulls

    def set_factor(self, factor: float) -> None:
        """The schedule's factor of the next step(s) (written into a device tensor)."""
        self.neg_factor.fill_(-factor)

    @torch.no_grad()
    def step(self, factor: float | None = None, *, clear_grads: bool = True) -> None:
        """One update with the learning rates scaled by ``factor`` (the schedule; None: the last one set).

        ``clear_grads=False`` leaves the gradients in place (a CUDA graph's gradients are its static buffers).
        """
        if factor is not None:
            self.set_factor(factor)
        b1, b2 = self.betas
        self.t += 1
        inv_bc1 = 1 / (1 - b1**self.t)  # bias corrections of step t (float64 0-d tensors)
        inv_sqrt_bc2 = (1 - b2**self.t).rsqrt()
        scalars = torch.stack([inv_bc1.float(), inv_sqrt_bc2.float(), self.neg_factor])  # (3,): c1, c2, −f
        kw = {"betas": self.betas, "eps": self.eps, "weight_decay": self.wd}
        # a parameter no loss reached (a plain module's unused one) is left as it is, as torch.optim.AdamW leaves it
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        p, m, v, lr = ([group[i] for i in live] for group in (self.params, self.m, self.v, self.lr_full))
        adamw_fused(p, [t.grad for t in p], m, v, lr, scalars, **kw)
        if clear_grads:
            for p in self.params:
                p.grad = None

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes: parameters, moments and the step count (for snapshots)."""
        return [*self.params, *self.m, *self.v, self.t]
