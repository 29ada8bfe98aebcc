"""Attention fused into one kernel (passes/attention.py, kernels/attention.h) against PyTorch:
heads split by Reshape + Transpose as exporters write them, scaled by a Mul or a Div, with an
additive mask that broadcasts over heads, over query rows, or not at all, and without one;
awkward sizes (head dims and key counts that end mid vector, fewer query rows than a block,
cross attention with more keys than queries, K and V shared by all heads, batch 2); 1 to 3
threads bit-identical; the fused graph run by the numpy reference too; and the chains that must
stay unfused."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from harness import run_threads_deterministic

import xgen
from xgen import reference
from xgen.frontend.onnx import import_onnx
from xgen.frontend.torch import export_onnx
from xgen.ir import Op
from xgen.passes import optimize


class Attention(torch.nn.Module):
    """Multi-head attention of x's rows over memory's, written out as exporters see it."""

    def __init__(self, embed: int, heads: int, head_dim: int, kv_heads: int, divide: bool):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.divide = heads, kv_heads, head_dim, divide
        self.q = torch.nn.Linear(embed, heads * head_dim)
        self.kv = torch.nn.Linear(embed, 2 * kv_heads * head_dim)
        self.out = torch.nn.Linear(heads * head_dim, embed)

    def split(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:
        q = self.split(self.q(x), self.heads)
        k, v = (self.split(t, self.kv_heads) for t in self.kv(memory).chunk(2, dim=-1))
        scores = q @ k.transpose(-1, -2)
        if self.divide:
            scores = scores / math.sqrt(self.head_dim)
        else:
            scores = scores * (1.0 / math.sqrt(self.head_dim))
        if mask:
            scores = scores + mask[0]
        y = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2)
        return self.out(y.reshape(x.shape[0], x.shape[1], -1))


# name: batch, query rows, keys, heads, head dim, kv heads, mask shape (None: no mask), divide
CASES = {
    "minilm_like": (1, 20, 20, 4, 32, 4, (1, 1, 1, 20), False),
    "head_dim_24_keys_37": (1, 37, 37, 3, 24, 3, (1, 1, 37, 37), True),
    "batch_2_padding_mask": (2, 9, 9, 2, 16, 2, (2, 1, 1, 9), False),
    "few_queries_many_keys": (1, 5, 70, 2, 8, 2, None, True),
    "shared_kv": (2, 11, 13, 4, 20, 1, (1, 1, 11, 13), False),
    "mask_per_head": (1, 8, 8, 2, 40, 2, (1, 2, 8, 8), True),
}


def case(name: str) -> tuple[bytes, dict[str, np.ndarray], np.ndarray]:
    """The module's ONNX export, its inputs, and PyTorch's output."""
    batch, sq, sk, heads, head_dim, kv_heads, mask_shape, divide = CASES[name]
    torch.manual_seed(0)
    module = Attention(24, heads, head_dim, kv_heads, divide).eval()
    inputs = [torch.randn(batch, sq, 24), torch.randn(batch, sk, 24)]
    if mask_shape is not None:  # 0 where attended, a large negative number where masked
        inputs.append(torch.where(torch.rand(mask_shape) < 0.3, -1e4, 0.0))
    with torch.no_grad():
        expected = module(*inputs).numpy()
    model = export_onnx(module, tuple(inputs))
    names = ("x", "memory", "mask")[: len(inputs)]
    feeds = {name: t.numpy() for name, t in zip(names, inputs, strict=True)}
    return model, feeds, expected


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    error = np.abs(got - want).max() / np.abs(want).max()
    assert error < 1e-5, f"{what}: error {error:.2e} of the output's magnitude"


def attention_nodes(model: bytes) -> list:
    graph = optimize(import_onnx(model))
    return [n for n in graph.nodes if n.op is Op.ATTENTION]


@pytest.mark.parametrize("name", CASES)
def test_fused_attention_matches_torch(name: str) -> None:
    model, feeds, expected = case(name)
    compiled = xgen.compile(model)
    body = compiled.source.split("xgen_run")[-1]
    assert body.count("xg_attention(") == 1 and "xg_softmax(" not in body
    feeds = dict(zip(compiled.input_names, feeds.values(), strict=True))
    for threads in (1, 2, 3):
        (got,) = run_threads_deterministic(compiled, feeds, threads).values()
        assert_close(got, expected, f"{name}, {threads} threads")


@pytest.mark.parametrize("name", CASES)
def test_reference_runs_the_fused_graph(name: str) -> None:
    model, feeds, expected = case(name)
    graph = optimize(import_onnx(model))
    assert [n.op for n in graph.nodes].count(Op.ATTENTION) == 1
    names = [v.name for v in graph.inputs]
    (got,) = reference.run(graph, dict(zip(names, feeds.values(), strict=True))).values()
    assert_close(got, expected, name)


class WeightsReturned(Attention):
    """The attention probabilities are an output too: they must be written, so nothing fuses."""

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q, k, v = (self.split(t, self.heads) for t in (self.q(x), *self.kv(memory).chunk(2, -1)))
        p = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return p @ v, p


class SoftmaxOverQueries(Attention):
    """A softmax along the query axis is not attention's."""

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        q, k, v = (self.split(t, self.heads) for t in (self.q(x), *self.kv(memory).chunk(2, -1)))
        return torch.softmax(q @ k.transpose(-1, -2), dim=-2) @ v


def test_only_attention_chains_fuse() -> None:
    x = (torch.randn(1, 6, 24), torch.randn(1, 6, 24))
    plain = Attention(24, 2, 12, 2, False).eval()
    assert len(attention_nodes(export_onnx(plain, x))) == 1
    for module in (WeightsReturned(24, 2, 12, 2, False), SoftmaxOverQueries(24, 2, 12, 2, False)):
        assert attention_nodes(export_onnx(module.eval(), x)) == []


def test_fused_attention_keeps_the_output_transpose_and_perms() -> None:
    model, _, _ = case("minilm_like")
    (node,) = attention_nodes(model)
    assert node.attrs.out_perm == (0, 2, 1, 3)  # heads back beside each other, no Transpose
    assert node.attrs.k_perm == (0, 2, 1, 3)  # K read [batch, head, key, feature]
    assert node.attrs.scale == pytest.approx(1 / math.sqrt(32))
    # what `xgen info --fusion` lists it computing: both products, the scale, mask, softmax
    assert node.origin.count("MatMul") == 2 and "Softmax" in node.origin
    assert {"Mul", "Add", "Transpose"} <= set(node.origin)


class ScaledDotProduct(torch.nn.Module):
    """torch's fused attention: its export scales Q and K^T by sqrt(scale) each, before the
    product."""

    def forward(self, q, k, v, mask) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def test_scaled_dot_product_attention_export_fuses() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 11, 24) for _ in range(3))
    mask = torch.where(torch.rand(1, 1, 11, 11) < 0.3, -1e4, 0.0)
    model = export_onnx(ScaledDotProduct(), (q, k, v, mask))
    ops = [n.op for n in optimize(import_onnx(model)).nodes]
    assert ops.count(Op.ATTENTION) == 1 and Op.MUL not in ops and Op.SOFTMAX not in ops
    with torch.no_grad():
        expected = ScaledDotProduct()(q, k, v, mask).numpy()
    got = xgen.compile(model)(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    assert_close(got, expected, "scaled_dot_product_attention")


class NanGuarded(torch.nn.Module):
    """Attention whose fully masked rows (-inf throughout: softmax 0/0) give zeros, as
    exporters of scaled_dot_product_attention guard them: Where(IsNaN(p), 0, p)."""

    def forward(self, q, k, v, mask) -> torch.Tensor:
        p = torch.softmax(q @ k.transpose(-1, -2) * 0.25 + mask, dim=-1)
        return torch.where(torch.isnan(p), 0.0, p) @ v


def test_a_nan_guard_on_the_probabilities_fuses_and_zeroes_fully_masked_rows() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 9, 16) for _ in range(3))
    mask = torch.where(torch.rand(1, 1, 9, 9) < 0.3, float("-inf"), 0.0)
    mask[..., 4, :] = float("-inf")  # query row 4 sees nothing
    model = export_onnx(NanGuarded(), (q, k, v, mask))
    graph = optimize(import_onnx(model))
    ((node,),) = [[n for n in graph.nodes if n.op is Op.ATTENTION]]
    assert node.attrs.nan_to_zero and Op.IS_NAN not in [n.op for n in graph.nodes]
    with torch.no_grad():
        expected = NanGuarded()(q, k, v, mask).numpy()
    assert np.all(expected[0, :, 4] == 0.0)
    feeds = [q.numpy(), k.numpy(), v.numpy(), mask.numpy()]
    assert_close(xgen.compile(model)(*feeds), expected, "compiled")
    names = [i.name for i in graph.inputs]
    (got,) = reference.run(graph, dict(zip(names, feeds, strict=True))).values()
    assert_close(got, expected, "reference")


class CachedDecode(torch.nn.Module):
    """A decoder's attention of new queries over a stacked KV cache: each layer's cache is a
    Gather of the stack, joined to the new keys and values by a Concat along the keys."""

    def forward(self, q, past_k, past_v, k, v, mask) -> tuple[torch.Tensor, ...]:
        outputs = []
        for layer in range(past_k.shape[0]):
            keys = torch.cat([past_k[layer], k], dim=2)
            values = torch.cat([past_v[layer], v], dim=2)
            p = torch.softmax(q @ keys.transpose(-1, -2) * 0.3 + mask, dim=-1)
            outputs.append(p @ values)
        return tuple(outputs)


def test_a_kv_cache_joined_by_concat_is_read_in_place() -> None:
    """Cached keys ending mid panel (21 + 2 = 23 keys), two layers (views at an offset): the
    Concats become parts of each Attention, nothing copies the cache."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 3, 2, 20), torch.randn(1, 3, 2, 20), torch.randn(1, 3, 2, 20)
    past_k, past_v = torch.randn(2, 1, 3, 21, 20), torch.randn(2, 1, 3, 21, 20)
    mask = torch.where(torch.rand(1, 1, 2, 23) < 0.3, -1e4, 0.0)
    inputs = (q, past_k, past_v, k, v, mask)
    model = export_onnx(CachedDecode(), inputs)
    graph = optimize(import_onnx(model))
    ops = [n.op for n in graph.nodes]
    assert ops.count(Op.ATTENTION) == 2 and Op.CONCAT not in ops
    assert all(n.attrs.k_parts == n.attrs.v_parts == 2 for n in graph.nodes if n.op is Op.ATTENTION)
    compiled = xgen.compile(model)
    body = compiled.source.split("xgen_run")[-1]
    assert "xg_gather(" not in body  # the layers' caches are views of the stacks
    with torch.no_grad():
        expected = [t.numpy() for t in CachedDecode()(*inputs)]
    feeds = dict(zip(compiled.input_names, (t.numpy() for t in inputs), strict=True))
    for threads in (1, 2):
        got = run_threads_deterministic(compiled, feeds, threads).values()
        for g, want in zip(got, expected, strict=True):
            assert_close(g, want, f"{threads} threads")
    names = [i.name for i in graph.inputs]
    got = reference.run(graph, dict(zip(names, feeds.values(), strict=True))).values()
    for g, want in zip(got, expected, strict=True):
        assert_close(g, want, "reference")


def test_hugging_face_bert_with_sdpa_attention_is_one_kernel_a_layer() -> None:
    """Hugging Face's default attention (sdpa) exports Q and K^T each scaled, K^T as Reshape,
    Transpose, Reshape around a head split, and a NaN guard: all of it fuses, no copy left."""
    transformers = pytest.importorskip("transformers")
    from xgen.zoo.transformers_models import HiddenStates

    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
        attn_implementation="sdpa",
    )  # fmt: skip
    module = HiddenStates(transformers.BertModel(config, add_pooling_layer=False)).eval()
    ids, mask = torch.randint(0, 100, (1, 16)), torch.ones(1, 16, dtype=torch.int64)
    mask[:, 12:] = 0
    model = export_onnx(module, (ids, mask), ["input_ids", "attention_mask"])
    ops = [n.op for n in optimize(import_onnx(model)).nodes]
    assert ops.count(Op.ATTENTION) == 2 and Op.TRANSPOSE not in ops and Op.SOFTMAX not in ops
    with torch.no_grad():
        expected = module(ids, mask).numpy()
    assert_close(xgen.compile(model)(ids.numpy(), mask.numpy()), expected, "BERT sdpa")
