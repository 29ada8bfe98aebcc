"""Public API and runtime: compile, run, input checks, cache, save/load, export, compiler errors."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import xgen
from xgen.codegen import cc
from xgen.errors import CompilerError, InputError, XgenError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XGEN_CACHE_DIR", str(tmp_path / "cache"))


def two_output_model() -> onnx.ModelProto:
    """y = relu(x + bias), z = reshape(y): x float32[2, 3], with bias an initializer."""
    bias = numpy_helper.from_array(np.array([1.0, -2.0, 0.5], np.float32), "bias")
    shape = numpy_helper.from_array(np.array([6], np.int64), "shape")
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
        helper.make_node("Reshape", ["y", "shape"], ["z"], name="reshape"),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [6])],
        [bias, shape],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def expected(x: np.ndarray) -> np.ndarray:
    return np.maximum(x + np.array([1.0, -2.0, 0.5], np.float32), 0)


X = np.arange(-3, 3, dtype=np.float32).reshape(2, 3)


def test_compile_from_proto_bytes_and_path(tmp_path) -> None:
    model = two_output_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    for source in (model, model.SerializeToString(), path, str(path)):
        compiled = xgen.compile(source)
        assert compiled.input_names == ["x"] and compiled.output_names == ["y", "z"]
        y, z = compiled(X)
        np.testing.assert_array_equal(y, expected(X))
        np.testing.assert_array_equal(z, expected(X).reshape(6))


def test_one_output_comes_back_as_an_array() -> None:
    model = two_output_model()
    del model.graph.output[1]
    compiled = xgen.compile(model, debug=True)
    result = compiled(X)
    assert isinstance(result, np.ndarray)
    np.testing.assert_array_equal(result, expected(X))
    assert set(compiled.run({"x": X})) == {"y"}


def test_feed_checks_name_the_input() -> None:
    compiled = xgen.compile(two_output_model())
    cases = [
        ({"x": X, "extra": X}, "unknown input.*'extra'"),
        ({}, "missing input.*'x'"),
        ({"x": X.astype(np.float64)}, r"'x' must be float32\[2,3\], got float64\[2,3\]"),
        ({"x": X.reshape(3, 2)}, r"'x' must be float32\[2,3\], got float32\[3,2\]"),
        ({"x": [[1, 2, 3], [4, 5, 6]]}, "got int64"),
    ]
    for feeds, message in cases:
        with pytest.raises(InputError, match=message):
            compiled.run(feeds)
    with pytest.raises(InputError, match="takes 1 input"):
        compiled(X, X)
    # A non-contiguous view is accepted (copied), never misread.
    wide = np.arange(12, dtype=np.float32).reshape(2, 6)[:, ::2]
    np.testing.assert_array_equal(compiled(wide)[0], expected(wide))


def test_threads_property() -> None:
    compiled = xgen.compile(two_output_model(), threads=1)
    assert compiled.threads == 1
    compiled.threads = None
    assert compiled.threads >= 1
    with pytest.raises(ValueError):
        compiled.threads = -2


def mlp_model(layers: int = 4, width: int = 256) -> onnx.ModelProto:
    """x float32[64, width] through `layers` of MatMul + Relu: big enough to split over threads."""
    rng = np.random.default_rng(5)
    weights, nodes, last = [], [], "x"
    for i in range(layers):
        w = rng.standard_normal((width, width)).astype(np.float32) / np.sqrt(width)
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"h{i}"]),
            helper.make_node("Relu", [f"h{i}"], [f"y{i}"]),
        ]
        last = f"y{i}"
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, width])],
        [helper.make_tensor_value_info(last, TensorProto.FLOAT, [64, width])],
        weights,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_concurrent_runs_of_one_library_do_not_meet() -> None:
    """Two compiled instances of one model share the cached library; their runs, on several
    Python threads at once, each get their own team state (barrier, status)."""
    from concurrent.futures import ThreadPoolExecutor

    model = mlp_model()
    first, second = xgen.compile(model, threads=2), xgen.compile(model, threads=2)
    inputs = [np.random.default_rng(i).standard_normal((64, 256), np.float32) for i in range(8)]
    expected = [first(x)[0] for x in inputs]

    def run(i: int) -> np.ndarray:
        compiled = first if i % 2 else second
        return compiled(inputs[i % 8])[0]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(64)))
    for i, got in enumerate(results):
        np.testing.assert_array_equal(got, expected[i % 8])


def test_profile_times_every_node_with_code() -> None:
    compiled = xgen.compile(mlp_model(layers=2), threads=2)
    feeds = {"x": np.ones((64, 256), np.float32)}
    rows = compiled.profile(feeds, runs=3)
    assert [(r.op, r.output) for r in rows] == [
        ("MatMul", "float32[64,256]"),
        ("Relu", "float32[64,256]"),
    ] * 2
    assert all(r.ms > 0 for r in rows)
    np.testing.assert_array_equal(compiled(feeds["x"]), compiled.run(feeds)["y1"])  # unchanged
    with pytest.raises(ValueError, match="runs"):
        compiled.profile(feeds, runs=0)


def test_bad_model_argument() -> None:
    with pytest.raises(XgenError, match="cannot compile a dict"):
        xgen.compile({})
    with pytest.raises(XgenError, match="example_inputs"):
        xgen.compile(two_output_model(), example_inputs=(X,))


def test_second_compile_hits_the_cache(monkeypatch) -> None:
    first = xgen.compile(two_output_model())

    def no_compiler(command, *args, **kwargs):
        if "--version" in command:
            return subprocess.CompletedProcess(command, 0, "cc (fake) 1.0\n", "")
        raise AssertionError(f"the compiler ran again: {command}")

    cc._version.cache_clear()
    monkeypatch.setattr(cc.subprocess, "run", no_compiler)
    monkeypatch.setattr(cc, "_version", lambda path: cc_version)
    second = xgen.compile(two_output_model())
    assert second._library == first._library


cc_version = cc.find_compiler().version


def _compile_in_child(cache: str, queue) -> None:
    import xgen as child_xgen

    compiled = child_xgen.compile(two_output_model(), cache_dir=cache)
    queue.put((str(compiled._library), compiled(X)[0].tolist()))


def test_concurrent_compiles_of_one_model_both_succeed(tmp_path) -> None:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    children = [
        context.Process(target=_compile_in_child, args=(str(tmp_path / "shared"), queue))
        for _ in range(2)
    ]
    for child in children:
        child.start()
    results = [queue.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=60)
        assert child.exitcode == 0
    assert results[0][0] == results[1][0]
    assert results[0][1] == results[1][1] == expected(X).tolist()
    entries = (tmp_path / "shared").iterdir()
    assert [p.name for p in entries if p.suffix not in (".so", ".sha256")] == []  # no temp dirs


def test_save_and_load_without_compiler(tmp_path, monkeypatch) -> None:
    compiled = xgen.compile(two_output_model())
    saved = compiled.save(tmp_path / "artefact")
    assert {p.name for p in saved.iterdir()} == {
        "model.c", "model.so", "weights.bin", "manifest.json"
    }  # fmt: skip
    monkeypatch.setattr(cc, "compile_shared", _forbidden)
    monkeypatch.setattr(xgen.api, "compile_shared", _forbidden)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    loaded = xgen.load(saved)
    assert loaded.output_names == ["y", "z"]
    np.testing.assert_array_equal(loaded(X)[0], expected(X))


def _forbidden(*args, **kwargs):
    raise AssertionError("load recompiled the model")


def test_save_refuses_a_foreign_directory(tmp_path) -> None:
    compiled = xgen.compile(two_output_model())
    target = tmp_path / "photos"
    target.mkdir()
    (target / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(XgenError, match="not empty .it holds other files.; pass overwrite=True"):
        compiled.save(target)
    compiled.save(target, overwrite=True)
    assert (target / "cat.jpg").exists()
    with pytest.raises(XgenError, match="does not hold a saved xgen model"):
        xgen.load(tmp_path)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_export_c_builds_with_make(tmp_path) -> None:
    compiled = xgen.compile(two_output_model())
    package = compiled.export_c(tmp_path / "pkg")
    assert {p.name for p in package.iterdir()} == {
        "model.c", "weights.bin", "xgen_model.h", "Makefile"
    }  # fmt: skip
    build = subprocess.run(["make", "-C", str(package), "libxgen_model.so"], capture_output=True)
    assert build.returncode == 0, build.stderr.decode()
    # The exported library is the same model: drive it with the runtime.
    from xgen.runtime.model import CompiledModel

    rebuilt = CompiledModel(compiled._model, package / "libxgen_model.so")
    np.testing.assert_array_equal(rebuilt(X)[1], expected(X).reshape(6))


def test_no_compiler_on_path(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(CompilerError, match="cc, gcc, clang on PATH.*apt-get install gcc"):
        xgen.compile(two_output_model())
    monkeypatch.setenv("CC", "/nonexistent/xcc")
    with pytest.raises(CompilerError, match=r"\$CC='/nonexistent/xcc'"):
        xgen.compile(two_output_model())


def test_compiler_errors_carry_the_output() -> None:
    with pytest.raises(CompilerError, match="(?s)failed.*this_is_not_c"):
        cc.compile_shared("int f(void) { this_is_not_c; }\n")


def test_compile_a_torch_module() -> None:
    torch = pytest.importorskip("torch")

    class Scale(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2.0 + 1.0

    compiled = xgen.compile(Scale(), example_inputs=torch.from_numpy(X))
    np.testing.assert_allclose(compiled(X), np.maximum(X, 0) * 2 + 1)
    positional = xgen.compile(Scale(), (torch.from_numpy(X),))  # as the README writes it
    np.testing.assert_allclose(positional(X), np.maximum(X, 0) * 2 + 1)
    with pytest.raises(XgenError, match="needs example_inputs"):
        xgen.compile(Scale())
    with pytest.raises(XgenError, match="input_shapes is for ONNX models"):
        xgen.compile(Scale(), {"x": (2, 3)})


def test_package_exports() -> None:
    assert xgen.__version__ and callable(xgen.compile) and callable(xgen.load)
    assert issubclass(xgen.InputError, xgen.XgenError)
    assert Path(sys.modules["xgen"].__file__).name == "__init__.py"


def test_torch_module_keeps_its_training_mode_and_tensors_give_tensors() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Dropout(0.5), torch.nn.ReLU())
    module[0].eval()  # a submodule the user froze keeps its own mode too
    x = torch.from_numpy(X)
    compiled = xgen.compile(module, (x,))
    assert module.training and module[1].training and not module[0].training
    y = compiled(x)  # the eval-mode function: dropout off
    assert isinstance(y, torch.Tensor)
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(y, module(x), rtol=1e-5, atol=1e-6)
    assert isinstance(compiled(X), np.ndarray)  # numpy callers get numpy
    assert isinstance(compiled(x.requires_grad_()), torch.Tensor)  # detached, not refused


def test_saved_threads_are_the_default_a_load_can_override(tmp_path) -> None:
    saved = xgen.compile(two_output_model(), threads=1).save(tmp_path / "one")
    assert json.loads((saved / "manifest.json").read_text())["threads"] == 1
    assert xgen.load(saved).threads == 1
    assert xgen.load(saved, threads=2).threads == 2
    default = xgen.compile(two_output_model()).threads
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest["threads"]  # a model saved before the field existed
    (saved / "manifest.json").write_text(json.dumps(manifest))
    assert xgen.load(saved).threads == default
    for bad in (-1, True, "2", 10**9):
        (saved / "manifest.json").write_text(json.dumps(manifest | {"threads": bad}))
        with pytest.raises(XgenError, match="'threads' is"):
            xgen.load(saved)
