"""Training recipes written the way a user writes them, for the campaign's tests.

``resnet_sgd``: a residual CNN with BatchNorm, SGD with Nesterov momentum and
weight decay, StepLR, a shuffled ``DataLoader`` (its order drawn from torch's
global generator) and random flips and noise drawn in the dataset.
``transformer_adamw``: a small transformer encoder with dropout, AdamW, linear
warmup then cosine decay, a GradScaler, and a ``DataLoader`` whose generator is
seeded per epoch. ``matrix(optimizer, schedule)`` builds a tiny MLP recipe for any
optimizer and schedule users commonly pick.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

import portability


def _images(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four classes of 3x12x12 images: a bright bar in one of four places, plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.randn(n, 3, 12, 12, generator=g)
    for i, label in enumerate(labels.tolist()):
        rows = slice(3 * label, 3 * label + 3)
        x[i, :, rows, :] += 1.0
    return x, labels


class Augmented(torch.utils.data.Dataset):
    """Random horizontal flips and noise, drawn from torch's global generator per item."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.x[i]
        if torch.rand(()) < 0.5:
            image = image.flip(-1)
        return image + 0.05 * torch.randn_like(image), self.y[i]


class ResidualCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(x + self.block(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def accuracy_on(x: torch.Tensor, y: torch.Tensor):
    def evaluate(model: nn.Module) -> float:
        return float((model(x).argmax(1) == y).float().mean())

    return evaluate


def resnet_sgd() -> portability.TrainingRecipe:
    """A residual CNN, SGD (momentum 0.9, Nesterov, weight decay), StepLR, augmentation."""
    torch.manual_seed(0)
    model = ResidualCNN()
    train_x, train_y = _images(1, 256)
    test_x, test_y = _images(2, 256)
    loader = torch.utils.data.DataLoader(Augmented(train_x, train_y), batch_size=32, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return portability.TrainingRecipe(
        model=model, optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=15, gamma=0.5),
        data=lambda epoch: loader,
        loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        evaluate=accuracy_on(test_x, test_y), steps=60, every=10, metric="accuracy")


def _sequences(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token sequences of length 8 over 12 tokens; the label says whether token 1 outnumbers token 2."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 12, (n, 8), generator=g)
    return tokens, ((tokens == 1).sum(1) > (tokens == 2).sum(1)).long()


class TinyTransformer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 16)
        self.position = nn.Parameter(torch.zeros(8, 16))
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens) + self.position).mean(1))


def transformer_adamw() -> portability.TrainingRecipe:
    """A transformer encoder, AdamW, warmup then cosine, a GradScaler, a per-epoch seeded loader."""
    torch.manual_seed(0)
    model = TinyTransformer()
    train_x, train_y = _sequences(1, 192)
    test_x, test_y = _sequences(2, 256)
    dataset = torch.utils.data.TensorDataset(train_x, train_y)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=8)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=52)
    scheduler = torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, cosine], milestones=[8])

    def data(epoch: int):
        order = torch.Generator().manual_seed(100 + epoch)
        return torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, generator=order)

    return portability.TrainingRecipe(
        model=model, optimizer=optimizer, scheduler=scheduler,
        scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=5),
        data=data, loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        evaluate=accuracy_on(test_x, test_y), steps=60, every=10, metric="accuracy")


def shared_generator() -> portability.TrainingRecipe:
    """Breaks the data contract: one generator, made once, shuffles every epoch."""
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    return portability.TrainingRecipe(
        model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1), data=lambda epoch: loader,
        loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        evaluate=lambda model: 1.0, steps=30, every=5)


OPTIMIZERS = {
    "sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda p: torch.optim.Adam(p, lr=1e-2),
    "adamw": lambda p: torch.optim.AdamW(p, lr=1e-2, weight_decay=0.05),
}
SCHEDULES = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=16),
    "onecycle": lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=16),
    "lambda": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda step: 0.9 ** step),
    "warmup": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=4),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12)], milestones=[4]),
}


def matrix(optimizer: str, schedule: str) -> portability.TrainingRecipe:
    """A tiny MLP with dropout trained by any optimizer of ``OPTIMIZERS`` and schedule of ``SCHEDULES``."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(96, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    opt = OPTIMIZERS[optimizer](model.parameters())
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16, shuffle=True)
    return portability.TrainingRecipe(
        model=model, optimizer=opt, scheduler=SCHEDULES[schedule](opt), data=lambda epoch: loader,
        loss=lambda model, batch: F.cross_entropy(model(batch[0]), batch[1]),
        evaluate=accuracy_on(x, y), steps=16, every=3)


def tiny_bert():
    """A 1-layer BERT classifier small enough to train in a test."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


class TokenPairs(torch.utils.data.Dataset):
    """32 sequences of 8 tokens; the label is the parity of the index."""

    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, 50, (8,), generator=g), "labels": torch.tensor(i % 2)}


def bert_trainer_recipe() -> portability.TrainingRecipe:
    """The tiny BERT as the Hugging Face Trainer trains it: AdamW over two groups (weight decay
    off for biases and LayerNorm weights), linear warmup then decay, so a Trainer checkpoint fits."""
    from transformers import get_linear_schedule_with_warmup

    model = tiny_bert()
    no_decay = [n for n, _ in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    groups = [{"params": [p for n, p in model.named_parameters() if n not in no_decay], "weight_decay": 0.0},
              {"params": [p for n, p in model.named_parameters() if n in no_decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=1e-3)
    loader = torch.utils.data.DataLoader(TokenPairs(), batch_size=4, shuffle=True)
    everything = next(iter(torch.utils.data.DataLoader(TokenPairs(), batch_size=32)))
    return portability.TrainingRecipe(
        model=model, optimizer=optimizer, scheduler=get_linear_schedule_with_warmup(optimizer, 1, 12),
        data=lambda epoch: loader, loss=lambda model, batch: model(**batch).loss,
        evaluate=lambda model: float(model(**everything).loss), higher_is_better=False, steps=12, every=4,
        metric="loss")
