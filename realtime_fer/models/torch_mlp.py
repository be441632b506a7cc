"""The comparison family: a gradient-trained multilayer perceptron (PyTorch, training only).

Trained per emotion with class-weighted binary cross-entropy (``pos_weight = n_neg / n_pos``)
and Adam, on the same pooled, standardised window features as the randomized network, then
converted to a :class:`~realtime_fer.models.network.Network` so that export, inference and
explanation do not need torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from realtime_fer.errors import FerError
from realtime_fer.models.network import Network, standardization

log = logging.getLogger(__name__)


@dataclass
class TorchOptions:
    """Hyperparameters of the torch MLP (YAML ``model.torch``)."""

    hidden: list[int] = field(default_factory=lambda: [256, 128])
    epochs: int = 15
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.1
    seed: int = 0
    threads: int = 0
    """torch intra-op threads; 0 keeps torch's default."""


def _require_torch():  # noqa: ANN202
    try:
        import torch
    except ImportError:
        raise FerError("the torch model family needs PyTorch: pip install torch==2.13.0 (or the [train] extra)") from None
    return torch


def build_module(net: Network):  # noqa: ANN201
    """A torch ``nn.Module`` computing ``net``'s score from windows (N, T, L, 3); used to
    cross-check attributions with Captum."""
    torch = _require_torch()
    nn = torch.nn

    class _Module(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.tensor(net.mean))
            self.register_buffer("std", torch.tensor(net.std))
            self.linears = nn.ModuleList()
            for w, b in net.layers:
                lin = nn.Linear(w.shape[0], w.shape[1])
                lin.weight.data = torch.tensor(w.T.copy())
                lin.bias.data = torch.tensor(b)
                self.linears.append(lin)
            self.head = nn.Linear(len(net.head_w), 1)
            self.head.weight.data = torch.tensor(net.head_w.reshape(1, -1))
            self.head.bias.data = torch.tensor([net.head_b], dtype=torch.float32)

        def forward(self, windows):  # noqa: ANN001, ANN202
            parts = []
            for p in net.pooling:
                parts.append((windows.mean(dim=1) if p == "mean" else windows[:, -1] - windows[:, 0]).reshape(len(windows), -1))
            z = (torch.cat(parts, dim=1) - self.mean) / self.std
            reps = [z]
            act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[net.activation]
            for lin in self.linears:
                reps.append(act(lin(reps[-1])))
            return self.head(torch.cat([reps[i] for i in net.head_inputs], dim=1)).squeeze(1)

    return _Module()


def fit_torch(
    features: np.ndarray,
    labels: np.ndarray,
    positives: dict[str, np.ndarray],
    options: TorchOptions,
    *,
    window_length: int,
    n_landmarks: int,
    pooling: tuple[str, ...] = ("mean",),
    n_blendshapes: int = 0,
) -> dict[str, Network]:
    """Train one torch MLP per emotion (same arguments as
    :func:`realtime_fer.models.randomized.fit_randomized`)."""
    torch = _require_torch()
    nn = torch.nn
    if options.threads:
        torch.set_num_threads(options.threads)
    x = np.asarray(features, dtype=np.float32)
    mean, std = standardization(x)
    xt = torch.tensor((x - mean) / std)
    codes = np.asarray(labels)
    nets: dict[str, Network] = {}
    for emotion, pos_codes in positives.items():
        y = np.isin(codes, np.asarray(pos_codes)).astype(np.float32)
        n_pos = float(y.sum())
        if n_pos == 0 or n_pos == len(y):
            raise ValueError(f"emotion {emotion!r} needs positive and negative samples")
        torch.manual_seed(options.seed)
        dims = [x.shape[1], *options.hidden]
        mods: list = []
        for a, b in zip(dims[:-1], dims[1:]):
            mods += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(options.dropout)]
        model = nn.Sequential(*mods, nn.Linear(dims[-1], 1))
        opt = torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.weight_decay)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - n_pos) / n_pos))
        yt = torch.tensor(y)
        gen = torch.Generator().manual_seed(options.seed)
        model.train()
        for epoch in range(options.epochs):
            perm = torch.randperm(len(xt), generator=gen)
            for s in range(0, len(xt), options.batch_size):
                idx = perm[s : s + options.batch_size]
                opt.zero_grad()
                loss = loss_fn(model(xt[idx]).squeeze(1), yt[idx])
                loss.backward()
                opt.step()
            log.debug("torch %s epoch %d loss %.4f", emotion, epoch, loss.item())
        model.eval()
        linears = [m for m in model if isinstance(m, nn.Linear)]
        layers = [(lin.weight.detach().numpy().T.copy(), lin.bias.detach().numpy().copy()) for lin in linears[:-1]]
        head = linears[-1]
        nets[emotion] = Network(
            window_length=window_length,
            n_landmarks=n_landmarks,
            pooling=tuple(pooling),
            n_blendshapes=n_blendshapes,
            mean=mean,
            std=std,
            layers=layers,
            activation="relu",
            head_inputs=(len(layers),),
            head_w=head.weight.detach().numpy().reshape(-1).copy(),
            head_b=float(head.bias.detach().numpy()[0]),
            family="torch",
        )
    return nets
