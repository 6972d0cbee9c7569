"""The reference the classification benchmark compares against: a plain MONAI DenseNet-121 recipe.

What a MONAI user writes from the tutorials: ``LoadImage`` + channel/intensity/resize transforms and
random rotate/flip/zoom applied on the fly (images decoded every epoch), DenseNet-121, Adam, fp32, a
simple loop that validates every epoch. No caching, no bf16, no channels_last, no schedule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.networks.nets import DenseNet121
from monai.transforms import (
    Compose,
    EnsureChannelFirst,
    Lambda,
    LoadImage,
    RandFlip,
    RandRotate,
    RandZoom,
    Resize,
    ScaleIntensity,
)


def _transforms(size: int, augment: bool) -> Compose:
    steps = [
        LoadImage(image_only=True, reader="PILReader"),
        EnsureChannelFirst(),
        Lambda(lambda x: x.float().mean(dim=0, keepdim=True)),  # RGB-encoded grey -> one channel
        ScaleIntensity(),
        Resize((size, size)),
    ]
    if augment:
        steps += [
            RandRotate(range_x=np.pi / 12, prob=0.5, keep_size=True),
            RandFlip(spatial_axis=1, prob=0.5),
            RandZoom(min_zoom=0.9, max_zoom=1.1, prob=0.5),
        ]
    return Compose(steps)


def train_reference(
    train: Sequence[tuple[str, int]],
    val: Sequence[tuple[str, int]],
    test: Sequence[tuple[str, int]],
    *,
    size: int = 128,
    minutes: float = 10.0,
    max_epochs: int = 50,
    seed: int = 0,
) -> dict:
    """Train until the time budget or ``max_epochs``; returns per-epoch validation accuracy with wall times and the
    test probabilities of the best validation epoch's weights (as MONAI's tutorials keep ``best_metric_model``)."""
    torch.manual_seed(seed)
    train_ds = Dataset([{"img": p, "label": y} for p, y in train], transform=None)
    train_tf, eval_tf = _transforms(size, True), _transforms(size, False)
    train_tf.set_random_state(seed)

    def collate(items, transform):
        images = torch.stack([torch.as_tensor(transform(item["img"])) for item in items])
        return images, torch.tensor([item["label"] for item in items])

    train_loader = DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=lambda b: collate(b, train_tf))
    model = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()
    history, started = [], time.perf_counter()
    best_accuracy, best_state = -1.0, None
    for epoch in range(1, max_epochs + 1):
        model.train()
        seen = 0
        epoch_start = time.perf_counter()
        for images, labels in train_loader:
            optimizer.zero_grad()
            loss = loss_fn(model(images.as_tensor() if hasattr(images, "as_tensor") else images), labels)
            loss.backward()
            optimizer.step()
            seen += len(labels)
        train_speed = seen / (time.perf_counter() - epoch_start)
        val_acc = _accuracy(model, val, eval_tf)
        if val_acc > best_accuracy:
            best_accuracy, best_state = val_acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(
            {
                "epoch": epoch,
                "val_accuracy": val_acc,
                "elapsed": time.perf_counter() - started,
                "train_images_per_second": train_speed,
            }
        )
        if time.perf_counter() - started > minutes * 60:
            break
    model.load_state_dict(best_state)
    test_probs = _probabilities(model, test, eval_tf)
    best_epoch = max(history, key=lambda row: row["val_accuracy"])["epoch"]
    return {
        "history": history,
        "test_probs": test_probs,
        "test_labels": np.array([y for _, y in test]),
        "best_epoch": best_epoch,
    }


@torch.no_grad()
def _probabilities(model, items, transform) -> np.ndarray:
    model.eval()
    out = []
    for start in range(0, len(items), 64):
        chunk = items[start : start + 64]
        images = torch.stack([torch.as_tensor(transform(p)) for p, _ in chunk])
        out.append(torch.softmax(model(images), dim=1).numpy())
    return np.concatenate(out)


def _accuracy(model, items, transform) -> float:
    probs = _probabilities(model, items, transform)
    return float((probs.argmax(1) == np.array([y for _, y in items])).mean())
