"""Greedy generation with a compiled GPT-2 decode step and a static KV cache (xgen.generate):
the tokens of a small random GPT-2 equal Hugging Face's greedy continuation, computed by full
forward passes without a cache; the same loop drives the PyTorch step; bad lengths are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import xgen
from xgen.errors import InputError
from xgen.frontend.torch import export_onnx
from xgen.zoo.transformers_models import DECODE_INPUTS, gpt2_decode_step

pytest.importorskip("transformers")
CONFIG = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=97, n_positions=32)
PROMPT = [5, 17, 3, 42]


@pytest.fixture(scope="module")
def decoder():
    step, inputs = gpt2_decode_step(16, **CONFIG)
    compiled = xgen.compile(export_onnx(step, inputs, list(DECODE_INPUTS)))
    return step, compiled, tuple(inputs[3].shape)


def hugging_face_greedy(lm: torch.nn.Module, prompt: list[int], new_tokens: int) -> list[int]:
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = lm(input_ids=torch.tensor([tokens])).logits
            tokens.append(int(logits[0, -1].argmax()))
    return tokens[len(prompt) :]


def test_compiled_decoder_generates_hugging_faces_tokens(decoder) -> None:
    step, compiled, cache = decoder
    result = xgen.generate(compiled, PROMPT, 12, cache)
    assert result.tokens == hugging_face_greedy(step.lm, PROMPT, 12)
    assert result.steps == len(PROMPT) + 11 and result.tokens_per_second > 0


def test_the_loop_drives_any_step_of_the_same_signature(decoder) -> None:
    step, compiled, cache = decoder

    def torch_step(*arrays: np.ndarray) -> list[np.ndarray]:
        with torch.no_grad():
            return [t.numpy() for t in step(*(torch.from_numpy(a) for a in arrays))]

    assert (
        xgen.generate(torch_step, PROMPT, 6, cache).tokens
        == xgen.generate(compiled, PROMPT, 6, cache).tokens
    )


def test_lengths_past_the_cache_are_refused(decoder) -> None:
    _, compiled, cache = decoder
    with pytest.raises(InputError, match="do not fit a cache of 16 positions"):
        xgen.generate(compiled, PROMPT, 13, cache)
    with pytest.raises(InputError, match="at least one token"):
        xgen.generate(compiled, [], 3, cache)
