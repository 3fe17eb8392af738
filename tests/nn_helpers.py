"""Small models with every supported layer type, and a tiny entry point for `weightprog evaluate`."""

from __future__ import annotations

import torch
from torch import nn


class Conv1D(nn.Module):
    """GPT-2 style: weight stored in × out, y = x @ W + b (as in Hugging Face transformers)."""

    def __init__(self, nf: int, nx: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.2)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).reshape(*x.shape[:-1], -1)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.conv1d = nn.Conv1d(8, 4, 3)
        self.conv3d = nn.Conv3d(1, 2, 2)
        self.fc = nn.Linear(4 * 6 + 2 * 27, 5)

    def forward(self, x):
        h = torch.relu(self.conv1(x))
        h = torch.relu(self.norm(self.depthwise(torch.relu(self.grouped(h)))))
        a = self.conv1d(h.mean(2))[:, :, :6].flatten(1)
        b = self.conv3d(h[:, :4, :4, :4].unsqueeze(1)).flatten(1)
        return self.fc(torch.cat([a, b], 1))


class SmallLSTM(nn.Module):
    def __init__(self, vocab: int = 20, hidden: int = 12):
        super().__init__()
        self.embed = nn.Embedding(vocab, 8)
        self.lstm = nn.LSTM(8, hidden, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(2 * hidden, 6, batch_first=True)
        self.head = nn.Linear(6, vocab)

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        h, _ = self.gru(h)
        return self.head(h)


class SmallTransformer(nn.Module):
    def __init__(self, d: int = 16, classes: int = 3):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, 2, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.cross = nn.MultiheadAttention(d, 2, kdim=8, vdim=8, batch_first=True)  # separate q/k/v
        self.head = nn.Linear(d, classes)

    def forward(self, x, memory):
        h = self.encoder(x)
        h, _ = self.cross(h, memory, memory, need_weights=False)
        return self.head(h.mean(1))


class TinyGPT2Block(nn.Module):
    def __init__(self, d: int = 16, vocab: int = 30):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.ln = nn.LayerNorm(d)
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.mlp = Conv1D(d, d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: stays digital

    def forward(self, tokens):
        h = self.ln(self.wte(tokens))
        q, k, v = self.c_attn(h).chunk(3, -1)
        att = torch.softmax(q @ k.transpose(-1, -2) / 4.0, -1)
        h = h + self.c_proj(att @ v)
        return self.lm_head(h + torch.tanh(self.mlp(h)))


def cnn_case(seed: int = 0):
    torch.manual_seed(seed)
    model = SmallCNN().eval()
    x, y = torch.randn(16, 3, 8, 8), torch.randint(0, 5, (16,))
    return model, (x,), y


def lstm_case(seed: int = 0):
    torch.manual_seed(seed)
    model = SmallLSTM().eval()
    tokens = torch.randint(0, 20, (4, 7))
    return model, (tokens,), tokens.roll(-1, 1)


def transformer_case(seed: int = 0):
    torch.manual_seed(seed)
    model = SmallTransformer().eval()
    x, mem, y = torch.randn(6, 5, 16), torch.randn(6, 4, 8), torch.randint(0, 3, (6,))
    return model, (x, mem), y


def gpt2_case(seed: int = 0):
    torch.manual_seed(seed)
    model = TinyGPT2Block().eval()
    tokens = torch.randint(0, 30, (3, 6))
    return model, (tokens,), tokens.roll(-1, 1)


CASES = {"cnn": cnn_case, "lstm": lstm_case, "transformer": transformer_case, "gpt2": gpt2_case}


def loss_fn_for(inputs, target):
    def loss_fn(model):
        logits = model(*inputs)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1))
    return loss_fn


def metrics_for(inputs, target):
    """evaluate_fn returning the mean cross-entropy (continuous: sensitive to any weight change)."""
    loss_fn = loss_fn_for(inputs, target)

    @torch.no_grad()
    def evaluate_fn(model):
        return float(loss_fn(model))
    return evaluate_fn


def tiny_entry():
    """Entry point for the CLI test: a 2-layer MLP on fixed random data, metric = accuracy."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(64, 6)
    y = model(x).argmax(1).detach()

    @torch.no_grad()
    def evaluate_fn(m):
        return float((m(x).argmax(1) == y).float().mean())
    return model, evaluate_fn


def bad_entry():
    return "not a model"
