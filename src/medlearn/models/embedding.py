"""A classifier trained for retrieval: cross-entropy plus a supervised contrastive loss (Khosla et al. 2020) on its
penultimate features, so that images of one class gather in the space ``retrieve`` searches (the features before
the final linear layer, L2-normalised), not only on the right side of a decision boundary.

The contrastive term sees the features through a small projection head (as SimCLR and SupCon do; retrieval uses
the features before it) and is computed in float32 whatever the autocast. Any registered classifier can be the
base (default ``cls-multires``); ``forward`` is the base's, so evaluation, Grad-CAM and export see a classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.models.registry import create_model, register_model


def supervised_contrastive_loss(
    embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1
) -> torch.Tensor:
    """SupCon's L_out: for each anchor with at least one positive (same label, not itself), the mean over its
    positives of -log softmax similarity against every other sample; averaged over those anchors (0 when none)."""
    z = F.normalize(embeddings.float(), dim=1)
    similarity = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool, device=z.device)
    similarity = similarity.masked_fill(self_mask, float("-inf"))
    log_prob = similarity - torch.logsumexp(similarity, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    counts = positives.sum(dim=1)
    anchors = counts > 0
    if not anchors.any():
        return embeddings.sum() * 0.0
    mean_log_prob = (log_prob.masked_fill(~positives, 0.0).sum(dim=1)[anchors]) / counts[anchors]
    return -mean_log_prob.mean()


class ContrastiveClassifier(nn.Module):
    """``base`` with a projection head on its penultimate features and the combined loss (module docstring)."""

    def __init__(
        self,
        base: nn.Module,
        in_channels: int,
        projection: int = 128,
        weight: float = 1.0,
        temperature: float = 0.1,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        self.base = base
        self.head = _last_called_linear(base, torch.zeros(2, in_channels, *([64] * spatial_dims)))
        features = self.head.in_features
        self.projection = nn.Sequential(
            nn.Linear(features, features), nn.ReLU(inplace=True), nn.Linear(features, projection)
        )
        self.weight, self.temperature = float(weight), float(temperature)
        if getattr(base, "gradcam_layer", None):
            self.gradcam_layer = f"base.{base.gradcam_layer}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x)

    def training_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, criterion: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            logits = self.base(inputs)
        finally:
            handle.remove()
        contrastive = supervised_contrastive_loss(self.projection(captured[-1].float()), targets, self.temperature)
        return criterion(logits.float(), targets) + self.weight * contrastive, logits


def _last_called_linear(model: nn.Module, example: torch.Tensor) -> nn.Linear:
    called: list[nn.Module] = []
    handles = [
        m.register_forward_pre_hook(lambda m, _a: called.append(m)) for m in model.modules() if isinstance(m, nn.Linear)
    ]
    try:
        with torch.no_grad():
            was_training = model.training
            model.eval()(example)
            model.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    if not called:
        raise ValueError(f"{type(model).__name__} calls no nn.Linear layer: no penultimate features")
    return called[-1]


@register_model(
    "retrieval-supcon",
    task="classification",
    summary="A classifier (default cls-multires) trained with cross-entropy + supervised contrastive loss (retrieval)",
)
def retrieval_supcon(
    in_channels: int = 1,
    num_classes: int = 2,
    base: str = "cls-multires",
    projection: int = 128,
    weight: float = 1.0,
    temperature: float = 0.1,
    **base_kwargs,
) -> nn.Module:
    """Kwargs: ``base`` (a registered classifier) and its own kwargs, ``projection``, ``weight``, ``temperature``."""
    backbone = create_model(base, in_channels=in_channels, num_classes=num_classes, **base_kwargs)
    spatial_dims = int(base_kwargs.get("spatial_dims", 2))
    return ContrastiveClassifier(backbone, in_channels, projection, weight, temperature, spatial_dims)


def nt_xent_loss(first: torch.Tensor, second: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's NT-Xent: ``first[i]`` and ``second[i]`` are two views of one image; each of the 2N embeddings must
    pick its partner out of the 2N - 1 others (cross-entropy over cosine similarities / temperature)."""
    z = F.normalize(torch.cat([first, second]).float(), dim=1)
    n = len(first)
    similarity = (z @ z.T / temperature).fill_diagonal_(float("-inf"))
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(similarity, partners)


class SelfSupervisedEncoder(nn.Module):
    """A classifier's trunk with SimCLR's projection head, trained without labels (two views of each image).

    ``forward`` returns the projection the loss sees; retrieval embeds with :attr:`feature_layer`'s input, the
    trunk's pooled features before the projection (SimCLR: they transfer better than the projection's output).
    The base classifier's own final linear layer is bypassed: its input is captured and projected instead."""

    def __init__(self, base: nn.Module, in_channels: int, projection: int = 128, spatial_dims: int = 2) -> None:
        super().__init__()
        self.base = base
        self.head = _last_called_linear(base, torch.zeros(2, in_channels, *([64] * spatial_dims)))
        self.head.requires_grad_(False)  # unused: the projection replaces it
        features = self.head.in_features
        self.projection = nn.Sequential(
            nn.Linear(features, features), nn.ReLU(inplace=True), nn.Linear(features, projection)
        )

    @property
    def feature_layer(self) -> nn.Linear:
        """The layer whose input is the retrieval embedding."""
        return self.projection[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = self.head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            self.base(x)
        finally:
            handle.remove()
        return self.projection(captured[-1])


@register_model(
    "retrieval-simclr",
    task="retrieval",
    summary="A classifier's trunk (default cls-multires) + projection head trained self-supervised (SimCLR NT-Xent)",
)
def retrieval_simclr(in_channels: int = 1, base: str = "cls-multires", projection: int = 128, **base_kwargs):
    """Kwargs: ``base`` (a registered classifier) and its own kwargs, ``projection`` (the loss's dimension)."""
    backbone = create_model(base, in_channels=in_channels, num_classes=2, **base_kwargs)
    spatial_dims = int(base_kwargs.get("spatial_dims", 2))
    return SelfSupervisedEncoder(backbone, in_channels, projection, spatial_dims)
