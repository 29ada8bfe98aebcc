"""Greedy text generation with a decoder compiled once: one decode step per token against a KV
cache of static size (the convention of xgen.zoo.transformers_models.GPT2DecodeStep).

The step takes (token [1, 1], position [1, 1], mask [1, 1, 1, S + 1], past_k, past_v
[layers, 1, heads, S, head dim]) and returns (logits [1, 1, vocab], k, v [layers, 1, heads, 1,
head dim]); this loop writes k and v into the cache at the token's position and unmasks it. The
prompt goes through the same step, a token at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xgen.errors import InputError

Step = Callable[..., Sequence[np.ndarray]]
MASKED = np.float32(-1e9)  # added to the scores of cache positions not written yet


@dataclass(frozen=True)
class Generation:
    tokens: list[int]  # the new tokens, after the prompt
    steps: int  # decode steps run: the prompt's tokens and the new ones but the last
    seconds: float  # wall time of those steps

    @property
    def tokens_per_second(self) -> float:
        return self.steps / self.seconds


def generate(
    step: Step, prompt: Sequence[int], new_tokens: int, cache_shape: Sequence[int]
) -> Generation:
    """Greedy decoding: the prompt, then new_tokens tokens each the argmax of the logits.
    step is a compiled decoder (`xgen.compile(...)`, called with the five inputs in order) or
    any callable of the same signature; cache_shape is past_k's [layers, 1, heads, S, head dim].
    The prompt and the new tokens must fit in the cache's S positions."""
    size = cache_shape[3]
    if not prompt or len(prompt) + new_tokens > size:
        raise InputError(
            f"a prompt of {len(prompt)} tokens and {new_tokens} new ones do not fit a cache of "
            f"{size} positions (the prompt needs at least one token)"
        )
    past_k = np.zeros(cache_shape, np.float32)
    past_v = np.zeros(cache_shape, np.float32)
    mask = np.full((1, 1, 1, size + 1), MASKED, np.float32)
    mask[..., size] = 0.0  # the step's own token
    tokens, generated = list(prompt), []
    start = time.perf_counter()
    for position in range(len(prompt) + new_tokens - 1):
        token = np.array([[tokens[position]]], np.int64)
        logits, k, v = step(token, np.array([[position]], np.int64), mask, past_k, past_v)
        past_k[:, :, :, position] = k[:, :, :, 0]
        past_v[:, :, :, position] = v[:, :, :, 0]
        mask[..., position] = 0.0
        if position >= len(prompt) - 1:
            generated.append(int(np.argmax(logits[0, -1])))
            tokens.append(generated[-1])
    return Generation(generated, len(prompt) + new_tokens - 1, time.perf_counter() - start)
