"""Synergic deep learning (Zhang et al. 2019): DCNN components that correct each other.

``n`` DCNN components each classify images on their own. For every pair of components a synergic
network (two FC layers) receives the concatenated embeddings of two images, one through each
component, and predicts whether the images are of the same class. Its loss flows back into both
components' embeddings (nothing is detached), so a component whose features put two same-class
images far apart (or two different-class images together) is corrected by the synergic signal.

Pairing: every component embeds the whole batch once; the pair for image ``i`` is image
``partner[i]`` of the same batch. Since each image's embedding does not depend on the others
(BatchNorm statistics are permutation invariant), this equals feeding the shuffled batch to the
second component, at no extra cost. Partners are drawn with the global torch RNG (seeded runs are
reproducible) so that about half of the pairs are same-class, else the synergic target would be
dominated by whichever answer the class balance favours.

Inference (``forward``): the average of the components' softmax; the returned "logits" are the
log of those averaged probabilities, so ``softmax(logits)`` is exactly the ensemble probability.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import MedlearnError
from medlearn.models.deep import build_resnet
from medlearn.models.registry import register_model


def synergic_partners(labels: torch.Tensor) -> torch.Tensor:
    """Partner index for every sample: a random half get a same-class partner, the rest a different class.

    A sample never partners itself when another sample qualifies; if no sample of the wanted kind
    exists (a batch of one class), any other sample is used.
    """
    size = labels.shape[0]
    device = labels.device
    want_same = torch.zeros(size, dtype=torch.bool, device=device)
    want_same[torch.randperm(size, device=device)[: (size + 1) // 2]] = True
    same = labels[:, None] == labels[None, :]
    not_self = ~torch.eye(size, dtype=torch.bool, device=device)
    wanted = torch.where(want_same[:, None], same & not_self, ~same)
    fallback = not_self if size > 1 else ~not_self
    allowed = torch.where(wanted.any(dim=1, keepdim=True), wanted, fallback)
    scores = torch.rand(size, size, device=device).masked_fill(~allowed, -1.0)
    return scores.argmax(dim=1)


def class_labels(targets: torch.Tensor) -> torch.Tensor:
    """Class indices from index targets or from one-hot / soft targets."""
    return targets.argmax(dim=1) if targets.ndim > 1 else targets


class SynergicNetwork(nn.Module):
    """FC layers on two concatenated embeddings -> one logit for "same class?"."""

    def __init__(self, embedding: int, hidden: int = 256) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(2 * embedding, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return self.layers(torch.cat([first, second], dim=1)).squeeze(1)


class SynergicClassifier(nn.Module):
    """``n_components`` ResNet components with their own classifiers + one synergic network per pair."""

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 2,
        spatial_dims: int = 2,
        n_components: int = 2,
        backbone: str = "resnet10",
        synergic_weight: float = 3.0,
        synergic_hidden: int = 256,
        **backbone_kwargs,
    ) -> None:
        super().__init__()
        if n_components < 2:
            raise MedlearnError(f"cls-synergic needs at least 2 components, got n_components={n_components}")
        self.synergic_weight = float(synergic_weight)
        self.components = nn.ModuleList()
        self.heads = nn.ModuleList()
        for _ in range(n_components):
            component = build_resnet(backbone, in_channels, num_classes, spatial_dims, **backbone_kwargs)
            # The component's own fc becomes its classifier head; the component itself yields embeddings.
            self.heads.append(component.fc)
            component.fc = nn.Identity()
            self.components.append(component)
        embedding = self.heads[0].in_features
        self.pairs = list(combinations(range(n_components), 2))
        self.synergic = nn.ModuleList(SynergicNetwork(embedding, synergic_hidden) for _ in self.pairs)
        self.gradcam_layer = "components.0.layer4"

    def component_outputs(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Each component's embeddings and class logits for ``x``."""
        embeddings = [component(x) for component in self.components]
        logits = [head(e) for head, e in zip(self.heads, embeddings, strict=True)]
        return embeddings, logits

    @staticmethod
    def ensemble_log_probs(logits: list[torch.Tensor]) -> torch.Tensor:
        """log(mean_k softmax(logits_k)), computed stably in float32."""
        log_probs = torch.stack([F.log_softmax(item.float(), dim=1) for item in logits])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(logits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the components' averaged class probabilities (use as logits)."""
        return self.ensemble_log_probs(self.component_outputs(x)[1])

    def training_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, criterion: nn.Module
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum of component losses + ``synergic_weight`` x synergic BCE summed over component pairs.

        Summing over pairs (not averaging) follows Zhang et al.: component ``i`` is updated with its own
        gradient plus lambda times the synergic gradient of every pair it belongs to.
        """
        embeddings, logits = self.component_outputs(inputs)
        loss = sum(criterion(item.float(), targets) for item in logits)
        labels = class_labels(targets)
        synergic_loss = inputs.new_zeros((), dtype=torch.float32)
        for (first, second), network in zip(self.pairs, self.synergic, strict=True):
            partner = synergic_partners(labels)
            same = (labels == labels[partner]).float()
            score = network(embeddings[first], embeddings[second][partner]).float()
            synergic_loss = synergic_loss + F.binary_cross_entropy_with_logits(score, same)
        loss = loss + self.synergic_weight * synergic_loss
        return loss, self.ensemble_log_probs(logits)


@register_model(
    "cls-synergic",
    task="classification",
    summary="Synergic deep learning (Zhang et al. 2019): n ResNet components + same-class synergic nets",
)
def cls_synergic(in_channels: int = 1, num_classes: int = 2, spatial_dims: int = 2, **kwargs) -> nn.Module:
    """Kwargs: ``n_components`` (2), ``backbone`` ("resnet10"), ``synergic_weight`` (lambda, 3)."""
    return SynergicClassifier(in_channels, num_classes, spatial_dims, **kwargs)
