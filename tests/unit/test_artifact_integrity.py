"""Saved models and the compile cache trust nothing they read back: a tampered, damaged or
incomplete artefact or cache entry gives an XgenError (or is rebuilt), never a crash; saving never
writes over a file in place, nor into an occupied folder unless asked.

Whatever could crash the interpreter runs in a child process, so that a crash fails the test
instead of killing pytest."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import xgen
from xgen.cli import main as cli_main
from xgen.codegen import cc
from xgen.errors import XgenError
from xgen.runtime.model import CompiledModel


@pytest.fixture(autouse=True, scope="module")
def _cache(tmp_path_factory):
    """One compile cache for the module (the tests that damage entries use their own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XGEN_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def own_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("XGEN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def biased_relu(width: int, seed: int = 0) -> onnx.ModelProto:
    """y = relu(x + bias): x float32[1, width], bias an initializer of `width` floats."""
    bias = np.random.default_rng(seed).standard_normal(width).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["s"]), helper.make_node("Relu", ["s"], ["y"])],
        f"relu{width}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])],
        [numpy_helper.from_array(bias, "bias")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def expected(width: int, seed: int = 0) -> np.ndarray:
    bias = np.random.default_rng(seed).standard_normal(width).astype(np.float32)
    return np.maximum(np.ones((1, width), np.float32) + bias, 0)


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("originals")
    return {
        name: xgen.compile(biased_relu(width)).save(directory / name)
        for name, width in (("small", 1), ("big", 128))
    }


@pytest.fixture
def saved(originals, tmp_path) -> dict[str, Path]:
    """A saved 1-float model ("small") and a 128-float one ("big"), ready to be tampered with."""
    return {name: Path(shutil.copytree(path, tmp_path / name)) for name, path in originals.items()}


def copy_of(artifact: Path, name: str) -> Path:
    return Path(shutil.copytree(artifact, artifact.parent / name))


def edit_manifest(artifact: Path, **changes: object) -> None:
    path = artifact / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


def rehash(artifact: Path, *names: str) -> None:
    """Record the files' current sha256 in the manifest: a tamperer who also edits the manifest."""
    digests = json.loads((artifact / "manifest.json").read_text()).get("sha256", {})
    for name in names:
        digests[name] = hashlib.sha256((artifact / name).read_bytes()).hexdigest()
    edit_manifest(artifact, sha256=digests)


def replace_file(path: Path, data: bytes) -> None:
    """Damage a file by replacing it (a new inode): writing in place a library that this process
    has mapped would crash pytest itself."""
    path.with_name("new").write_bytes(data)
    os.replace(path.with_name("new"), path)


def flip_byte(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    replace_file(path, bytes(data))


_LOAD_AND_RUN = """
import sys
import numpy as np
import xgen
from xgen.errors import XgenError
for path in sys.argv[1:]:
    try:
        model = xgen.load(path)
        y = model(np.ones(model.inputs[0].shape, np.float32))
        print(path, "ran", float(np.asarray(y).sum()), flush=True)
    except XgenError as e:
        print(path, "XgenError", str(e).replace(chr(10), " "), flush=True)
"""


def load_in_child(*artifacts: Path) -> dict[str, str]:
    """What loading and running each artefact does in a fresh process: 'ran ...' or
    'XgenError <message>'. A signal or any other exception fails the test."""
    child = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_RUN, *map(str, artifacts)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == 0, f"exit {child.returncode}:\n{child.stdout}{child.stderr[-3000:]}"
    return dict(line.split(" ", 1) for line in child.stdout.splitlines())


def test_tampered_artefacts_are_refused_in_a_fresh_process(saved) -> None:
    small, big = saved["small"], saved["big"]
    cases = {name: copy_of(small if name != "output_shape" else big, name) for name in (
        "output_shape", "other_library", "other_library_rehashed", "weights_byte",
        "library_byte", "truncated_library", "not_a_library",
    )}  # fmt: skip
    # The 128-float library would write its output into a 1-float buffer.
    edit_manifest(cases["output_shape"], outputs=[{"name": "y", "dtype": "float32",
                                                   "shape": [1, 1]}])  # fmt: skip
    for name in ("other_library", "other_library_rehashed"):
        shutil.copyfile(big / "model.so", cases[name] / "model.so")
    rehash(cases["other_library_rehashed"], "model.so")
    flip_byte(cases["weights_byte"] / "weights.bin", 0)
    flip_byte(cases["library_byte"] / "model.so", 4000)
    library = cases["truncated_library"] / "model.so"
    library.write_bytes(library.read_bytes()[:6000])
    (cases["not_a_library"] / "model.so").write_text("#!/bin/sh\necho not an ELF file\n")
    rehash(cases["not_a_library"], "model.so")

    results = load_in_child(*cases.values())
    got = {name: results[str(path)] for name, path in cases.items()}
    for name, message in got.items():
        assert message.startswith("XgenError "), (name, message)
    assert "outputs float32[1,128] (the model says outputs float32[1,1])" in got["output_shape"]
    sha = "modified or damaged since it was saved: its sha256 is not the one manifest.json recorded"
    for name in ("other_library", "weights_byte", "library_byte", "truncated_library"):
        assert sha in got[name], name
    assert "model.so does not match the model 'relu1'" in got["other_library_rehashed"]
    assert "inputs float32[1,128] (the model says inputs float32[1,1])" in got[
        "other_library_rehashed"
    ]
    assert "model.so is not a loadable shared library" in got["not_a_library"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda a: (a / "weights.bin").unlink(), r"weights.bin is missing"),
        (lambda a: (a / "model.c").unlink(), r"model.c is missing"),
        (lambda a: (a / "manifest.json").write_text("{not json"), r"manifest.json was .*not JSON"),
        (lambda a: edit_manifest(a, abi_version=1), r"model ABI 1; .*compile the model again"),
        (lambda a: edit_manifest(a, arena_bytes="64"), r"'arena_bytes' is \"64\", not a JSON int"),
        (lambda a: edit_manifest(a, sha256=None), r"'sha256' is null, not a JSON dict"),
        (lambda a: edit_manifest(a, sha256={}), r"'sha256' is \{\}"),
        (lambda a: edit_manifest(a, errors=[3]), r"'errors' is \[3\]"),
        (lambda a: edit_manifest(a, nodes=[["add"]]), r"'nodes' is \[\[\"add\"\]\]"),
        (lambda a: edit_manifest(a, build={}), r"'build' is \{\}"),
        (lambda a: edit_manifest(a, inputs=[{"name": "x", "dtype": "float99", "shape": [1]}]),
         r"\{\"name\": \"x\", \"dtype\": \"float99\", \"shape\": \[1\]\} is not a tensor spec"),
        (lambda a: edit_manifest(a, outputs=[{"name": "y", "dtype": "float32", "shape": [-1]}]),
         r"is not a tensor spec"),
        (lambda a: edit_manifest(a, outputs=[{"name": "y", "shape": [1]}]), "not a tensor spec"),
    ],
)  # fmt: skip
def test_damaged_manifest_or_missing_file(saved, damage, message) -> None:
    """Harmless to load in this process: each is refused before the library is touched."""
    damage(saved["small"])
    with pytest.raises(XgenError, match=message):
        xgen.load(saved["small"])


def test_edited_error_list_is_refused(tmp_path) -> None:
    """A failed runtime check returns its number k, the runtime reads errors[k - 1]: a manifest
    with fewer errors than the library has checks (an IndexError on a bad index) is refused."""
    data = numpy_helper.from_array(np.arange(4, dtype=np.float32), "data")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["data", "i"], ["y"])], "gather",
        [helper.make_tensor_value_info("i", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], [data],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    saved = xgen.compile(model).save(tmp_path / "gather")
    edit_manifest(saved, errors=[])
    with pytest.raises(XgenError, match=r"built for checks 1 \(the model says checks 0\)"):
        xgen.load(saved)(np.array([9]))


def test_compiled_model_verifies_any_library(tmp_path) -> None:
    generated = xgen.compile(biased_relu(4))._model
    text = tmp_path / "text.so"
    text.write_text("not a library")
    with pytest.raises(XgenError, match="text.so is not a loadable shared library"):
        CompiledModel(generated, text)
    foreign = cc.compile_shared("int f(void) { return 0; }\n")
    with pytest.raises(XgenError, match=r"not an xgen model library of ABI 2 \(it has no xgen_abi"):
        CompiledModel(generated, foreign)
    other = xgen.compile(biased_relu(8))._library
    differ = r"built for weights 32 \(the model says weights 16\), inputs float32\[1,8\]"
    with pytest.raises(XgenError, match=differ):
        CompiledModel(generated, other)


def test_save_refuses_an_occupied_folder_without_overwrite(saved) -> None:
    big = xgen.compile(biased_relu(128))
    other = xgen.compile(biased_relu(1, seed=7))
    with pytest.raises(XgenError, match=r"small is not empty \(it holds a saved xgen model\); "
                                        r"pass overwrite=True"):  # fmt: skip
        other.save(saved["small"])
    with pytest.raises(XgenError, match="not empty.*pass overwrite=True"):
        big.export_c(saved["small"])
    np.testing.assert_array_equal(xgen.load(saved["small"])(np.ones((1, 1), np.float32)),
                                  expected(1))  # fmt: skip
    other.save(saved["small"], overwrite=True)
    np.testing.assert_array_equal(xgen.load(saved["small"])(np.ones((1, 1), np.float32)),
                                  expected(1, seed=7))  # fmt: skip
    assert [p.name for p in saved["small"].iterdir() if p.name.startswith(".")] == []


def test_cli_compile_names_its_overwrite_flag(tmp_path, capsys) -> None:
    model = tmp_path / "m.onnx"
    onnx.save(biased_relu(4), model)
    out = tmp_path / "out"
    assert cli_main(["compile", str(model), "-o", str(out)]) == 0
    assert cli_main(["compile", str(model), "-o", str(out)]) == 1
    assert "is not empty (it holds a saved xgen model); pass --overwrite" in capsys.readouterr().err
    assert cli_main(["compile", str(model), "-o", str(out), "--overwrite"]) == 0
    np.testing.assert_array_equal(xgen.load(out)(np.ones((1, 4), np.float32)), expected(4))


_HOLD_AND_RUN = """
import sys
import numpy as np
import xgen
model = xgen.load(sys.argv[1])
print("loaded", flush=True)
sys.stdin.readline()  # the parent replaces the artefact meanwhile
print(float(model(np.ones((1, 128), np.float32)).sum()), flush=True)
"""


def test_a_process_holding_the_old_artefact_runs_on_while_it_is_replaced(saved) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLD_AND_RUN, str(saved["big"])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert child.stdout.readline() == "loaded\n"
        xgen.compile(biased_relu(128, seed=3)).save(saved["big"], overwrite=True)
        out, err = child.communicate("go\n", timeout=120)
    finally:
        child.kill()
    assert child.returncode == 0, err[-3000:]
    assert float(out) == pytest.approx(float(expected(128).sum()))
    replaced = xgen.load(saved["big"])(np.ones((1, 128), np.float32))
    np.testing.assert_array_equal(replaced, expected(128, seed=3))


def unary(op: str) -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])], op.lower(),
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_model_saved_again_loads_anew_in_the_same_process(tmp_path) -> None:
    """dlopen returns the library already loaded from a path: Abs saved over Relu (same
    signature) must not run Relu's code."""
    x = np.array([-2, -1, 1, 2], np.float32)
    relu = xgen.load(xgen.compile(unary("Relu")).save(tmp_path / "m"))
    xgen.compile(unary("Abs")).save(tmp_path / "m", overwrite=True)
    np.testing.assert_array_equal(xgen.load(tmp_path / "m")(x), np.abs(x))
    np.testing.assert_array_equal(relu(x), np.maximum(x, 0))
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "manifest.json", "model.c", "model.so", "weights.bin",
    ]  # fmt: skip


_COMPILE_AND_RUN = """
import numpy as np
import onnx
import xgen
model = xgen.compile(onnx.load_from_string(open(0, "rb").read()))
print(float(model(np.ones((1, 16), np.float32)).sum()), model._library, flush=True)
"""


def compile_in_child(model: onnx.ModelProto) -> tuple[float, Path]:
    """Compile and run model in a fresh process, with the cache of $XGEN_CACHE_DIR."""
    child = subprocess.run(
        [sys.executable, "-c", _COMPILE_AND_RUN], input=model.SerializeToString(),
        capture_output=True, timeout=300,
    )  # fmt: skip
    assert child.returncode == 0, f"exit {child.returncode}: {child.stderr.decode()[-3000:]}"
    total, library = child.stdout.decode().split()
    return float(total), Path(library)


def test_damaged_cache_entries_are_rebuilt(own_cache) -> None:
    model = biased_relu(16)
    library = xgen.compile(model)._library
    good = library.read_bytes()
    replace_file(library, good[: len(good) // 2])  # a full disk, a killed copy
    total, rebuilt = compile_in_child(model)  # a fresh process would map it: SIGBUS
    assert rebuilt == library and library.read_bytes() == good
    assert total == pytest.approx(float(expected(16).sum()))
    flip_byte(library, len(good) // 2)
    assert xgen.compile(model)._library.read_bytes() == good
    library.with_suffix(".sha256").unlink()  # written by an older xgen, or lost
    assert xgen.compile(model)._library.read_bytes() == good


def test_stale_temp_build_folders_are_removed(own_cache) -> None:
    cache = own_cache
    cache.mkdir()
    dead_pid = 2**31 - 2  # above any pid_max
    hour_ago = time.time() - 3600
    folders = {
        "killed": cache / f".{'a' * 32}-{dead_pid}-x1",
        "old_xgen": cache / f".{'b' * 32}-y2z3",
        "running": cache / f".{'c' * 32}-{os.getpid()}-x4",
        "young": cache / f".{'d' * 32}-{dead_pid}-x5",
    }
    for name, folder in folders.items():
        folder.mkdir()
        (folder / "model.c").write_text("int x;\n")
        if name != "young":
            os.utime(folder, (hour_ago, hour_ago))
    xgen.compile(biased_relu(2))
    assert {name: folder.exists() for name, folder in folders.items()} == {
        "killed": False, "old_xgen": False, "running": True, "young": True,
    }  # fmt: skip


def test_unwritable_cache_is_an_xgen_error(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XGEN_CACHE_DIR", str(blocker / "cache"))
    with pytest.raises(XgenError, match="cannot use the compile cache .*XGEN_CACHE_DIR"):
        xgen.compile(biased_relu(2))
