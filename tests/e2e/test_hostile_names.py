"""Strings from a model file never become C code: hostile names, doc strings and metadata in every
place of a model leave the generated C (model.c and the exported xgen_model.h) equal token for
token to that of the same model with plain names, and the model still runs and gives
onnxruntime's numbers. The one gate they pass, xgen/codegen/c_text.py, is checked on its own too.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import xgen
from xgen.codegen import c_text, cc

# Each is something that, written raw into C, ends a comment, starts a preprocessor line, splices
# lines (a backslash or the trigraph ??/ before a line end) or is not text C reads.
PAYLOADS = (
    "*/", "/*", "\n#include <stdlib.h>\n", "\n#error X\n", '"', "'", "\\", "x\\\n", "??/\n/",
    "*??/\n/", "\x00", "\r", "\t\x7f\x1b", "é∑\U0001f600", "\ufeff", "//",
)  # fmt: skip
LONG = "L" * 10_000


def exploit(marker: Path) -> str:
    """The issue's reproducer: a name that, written raw into a comment, calls system()."""
    return f'mm */ + 0 * system("touch {marker}") /*'


def rng_array(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def build(name: Callable[[str], str]) -> onnx.ModelProto:
    """Conv -> Add -> Relu -> Mul (a chain that fuses) -> Reshape (an alias) -> MatMul with a
    constant weight -> Gather -> Concat -> + y, and a Split into two outputs; name(place) gives
    every graph, node, value, initializer, input and output name, doc string and metadata."""
    n = name
    inits = [
        numpy_helper.from_array(rng_array((4, 3, 3, 3), 1), n("w")),
        numpy_helper.from_array(rng_array((4,), 2), n("b")),
        numpy_helper.from_array(rng_array((4, 1, 1), 3), n("bias")),
        numpy_helper.from_array(rng_array((1,), 4), n("scale")),
        numpy_helper.from_array(np.array([1, 144], np.int64), n("shape")),
        numpy_helper.from_array(rng_array((144, 5), 5), n("wm")),
        numpy_helper.from_array(np.array([4, 0, 2], np.int64), n("indices")),
    ]

    def node(op: str, inputs: list[str], outputs: list[str], place: str, **attrs) -> onnx.NodeProto:
        return helper.make_node(op, [n(i) for i in inputs], [n(o) for o in outputs], n(place),
                                doc_string=n(f"{place} doc"), **attrs)  # fmt: skip

    nodes = [
        node("Conv", ["x", "w", "b"], ["c"], "conv", pads=[1, 1, 1, 1]),
        node("Add", ["c", "bias"], ["a"], "add"),
        node("Relu", ["a"], ["r"], "relu"),
        node("Mul", ["r", "scale"], ["e"], "mul"),
        node("Reshape", ["e", "shape"], ["f"], "reshape"),
        node("MatMul", ["f", "wm"], ["m"], "matmul"),
        node("Gather", ["m", "indices"], ["g"], "gather", axis=1),
        node("Concat", ["g", "m"], ["cat"], "concat", axis=1),
        node("Add", ["cat", "y"], ["sum"], "add y"),
        node("Split", ["cat"], ["s1", "s2"], "split", axis=1, num_outputs=2),
    ]
    graph = helper.make_graph(
        nodes, n("graph"),
        [helper.make_tensor_value_info(n("x"), TensorProto.FLOAT, [1, 3, 6, 6]),
         helper.make_tensor_value_info(n("y"), TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info(n("sum"), TensorProto.FLOAT, [1, 8]),
         helper.make_tensor_value_info(n("s2"), TensorProto.FLOAT, [1, 4])],
        inits, doc_string=n("graph doc"),
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              doc_string=n("model doc"))  # fmt: skip
    model.ir_version = 8
    helper.set_model_props(model, {n("key"): n("value")})
    return model


def hostile_name(marker: Path) -> Callable[[str], str]:
    """Every payload in every place (the exploit first: a cut long name keeps it), and a 10 kB
    tail on a few."""
    payloads = exploit(marker) + "".join(PAYLOADS)
    return lambda place: place + payloads + (LONG if place in ("conv", "x", "wm", "s2") else "")


FEEDS = {"x": rng_array((1, 3, 6, 6), 6), "y": rng_array((1, 8), 7)}


def c_tokens(source: str, directory: Path) -> list[str]:
    """The tokens the C compiler sees once comments are gone and macros expanded, trigraphs on;
    it must also find nothing to warn about in the text (-Wall: a /* inside a comment)."""
    path = directory / "tokens.c"
    path.write_text(source)
    command = [cc.find_compiler().path, *cc.flags(), "-E", "-P", "-trigraphs", "-Wall", "-Wextra",
               "-Werror", str(path)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_hostile_names_stay_comments_and_the_model_runs(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    plain = xgen.compile(build(str))
    hostile = xgen.compile(build(hostile_name(marker)))

    assert c_tokens(hostile.source, tmp_path) == c_tokens(plain.source, tmp_path)
    assert exploit(marker) not in hostile.source and "\n#error" not in hostile.source
    assert hostile.source.isascii() and LONG not in hostile.source

    plain_bytes = build(str).SerializeToString()
    want = ort.InferenceSession(plain_bytes, providers=["CPUExecutionProvider"]).run(None, FEEDS)
    got = hostile(FEEDS["x"], FEEDS["y"])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    assert not marker.exists()

    # the names stay the model's, exactly, in Python
    assert hostile.input_names == [hostile_name(marker)(p) for p in ("x", "y")]
    loaded = xgen.load(hostile.save(tmp_path / "saved"))
    assert loaded.input_names == hostile.input_names and loaded.output_names == hostile.output_names
    for g, w in zip(loaded(FEEDS["x"], FEEDS["y"]), want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)

    package = hostile.export_c(tmp_path / "package")
    header = (package / "xgen_model.h").read_text()
    assert header.isascii() and exploit(marker) not in header
    plain_header = (plain.export_c(tmp_path / "plain") / "xgen_model.h").read_text()
    assert c_tokens(header, tmp_path) == c_tokens(plain_header, tmp_path)
    assert not marker.exists()


def test_a_node_name_cannot_run_code(tmp_path) -> None:
    """The issue's reproducer: a MatMul with a constant weight, named to call system()."""
    marker = tmp_path / "PWNED"
    w = rng_array((4, 3), 8)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name=exploit(marker))], "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(w, "w")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng_array((2, 4), 9)
    np.testing.assert_allclose(xgen.compile(model)(x), x @ w, rtol=1e-5, atol=1e-6)
    assert not marker.exists()


def test_names_that_are_not_utf8(tmp_path) -> None:
    """protobuf hands back a string field that is not UTF-8 as bytes: import, C, save and
    export_c take it as text."""
    data = build(lambda place: f"{place}@").SerializeToString()
    for place in ("graph", "x", "conv", "c", "wm", "sum"):
        data = data.replace(f"{place}@".encode(), f"{place}\xff".encode("latin-1"))
    compiled = xgen.compile(data)
    assert compiled.source.isascii() and compiled.name.startswith("graph")
    want = compiled(FEEDS["x"], FEEDS["y"])
    loaded = xgen.load(compiled.save(tmp_path / "saved"))
    assert loaded.input_names == compiled.input_names
    for g, w in zip(loaded(FEEDS["x"], FEEDS["y"]), want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert (compiled.export_c(tmp_path / "package") / "xgen_model.h").read_text().isascii()


@pytest.mark.parametrize("text", [*PAYLOADS, LONG, "\udcff lone surrogate", "a" * 400 + "é"])
def test_escape_keeps_printable_ascii_but_comment_enders_and_splices(text: str) -> None:
    escaped = c_text.escape(text)
    assert escaped.isascii() and escaped.isprintable()
    assert "*" not in escaped and "?" not in escaped
    assert all(escaped[i + 1] == "x" for i, char in enumerate(escaped) if char == "\\")
    assert len(escaped) <= c_text.LIMIT + 30


def test_escape_reads_back() -> None:
    assert c_text.escape("/model/conv1/Conv_output_0") == "/model/conv1/Conv_output_0"
    assert c_text.escape('a*/"\\?\n\x00é') == 'a\\x2a/"\\x5c\\x3f\\x0a\\x00\\xc3\\xa9'
    cut = c_text.escape(LONG)
    assert cut == "L" * c_text.LIMIT + f" ... [{len(LONG) - c_text.LIMIT} more characters]"
    assert c_text.comment("a */ b") == "/* a \\x2a/ b */"
