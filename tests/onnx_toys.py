"""Small torch models and HF directories for the ONNX adapter tests.

The functions here are also model-spec factories: ``onnx_toys:make_mlp``
(pytest puts this directory on sys.path).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class TokenMLP(torch.nn.Module):
    """Linear + GELU + LayerNorm on (batch, seq, features): the exporter folds
    its Linear weights' transposes into ``val_N`` initializers."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(8, 16)
        self.norm = torch.nn.LayerNorm(16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.norm(torch.nn.functional.gelu(self.fc1(x))))


class SmallCNN(torch.nn.Module):
    """Conv + BatchNorm (folded into the Conv by the exporter) + Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(6)
        self.head = torch.nn.Linear(6, 5)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.bn(self.conv(image))).mean(dim=(2, 3)))


def make_mlp() -> TokenMLP:
    torch.manual_seed(0)
    return TokenMLP().eval()


def make_cnn() -> SmallCNN:
    torch.manual_seed(1)
    model = SmallCNN()
    with torch.no_grad():  # non-trivial statistics, so folding them changes the Conv weight
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.bn.weight.uniform_(0.5, 1.5)
    return model.eval()


def make_not_a_module() -> str:
    return "not a module"


def mlp_inputs(batch: int = 2, seq: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, seq, 8)).astype(np.float32)}


def cnn_inputs(batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    return {"image": np.random.default_rng(seed).standard_normal((batch, 3, 8, 8)).astype(np.float32)}


def save_tiny_bert(directory: Path) -> Path:
    """A 2-layer BertForSequenceClassification built from config, saved with save_pretrained."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(2)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=3)
    BertForSequenceClassification(config).save_pretrained(directory)
    return directory


def save_tiny_gpt2(directory: Path) -> Path:
    """A 2-layer GPT2LMHeadModel (lm_head tied to wte) built from config."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(3)
    config = GPT2Config(vocab_size=120, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                        bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(directory)
    return directory


def write_bert_vocab(directory: Path) -> list[str]:
    """A WordPiece vocab.txt covering the built-in sentences, so a tokenizer loads offline."""
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "checkpoints", "should", "survive", "the",
             "trip", "between", "frameworks", "a", "converted", "model", "is", "only", "useful", "if",
             "it", "still", "predicts", "same", "thing", "."]
    (directory / "vocab.txt").write_text("\n".join(words) + "\n")
    return words
