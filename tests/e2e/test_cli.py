"""The xgen command line, run in-process through xgen.cli.main (and once as a real process)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import xgen
from xgen.cli import _values, main
from xgen.ir import DType, Graph, Op
from xgen.ir import ops as O
from xgen.passes import optimize
from xgen.passes.fusion_report import fusion_plan


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A Conv -> Relu -> Gemm model whose batch is left dynamic ("N")."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2, 5, 5])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 4])
    inits = [
        numpy_helper.from_array(rng.standard_normal((3, 2, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((4, 27)).astype(np.float32), "fc"),
        numpy_helper.from_array(np.array([-1, 27], np.int64), "flat"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "flat"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "cli", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path_factory.mktemp("cli") / "model.onnx"
    onnx.save(model, path)
    return path


def expected(x: np.ndarray, model_path) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_compile_then_run(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    assert main(["compile", str(model_path), "--shape", "x=2,2,5,5", "-o", str(out)]) == 0
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    result = tmp_path / "y.npz"
    assert main(["run", str(out), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(result)]) == 0
    np.testing.assert_allclose(np.load(result)["y"], expected(x, model_path), rtol=1e-4, atol=1e-5)
    assert "y: float32[2, 4]" in capsys.readouterr().out
    # A bare path feeds the only input.
    assert main(["run", str(out), "--input", str(tmp_path / "x.npy")]) == 0


def test_profile_lists_every_node_with_its_time(model_path, tmp_path, capsys):
    # Conv + Relu fuse, channels last between two Transposes; the Reshape is an alias
    assert main(["profile", str(model_path), "--shape", "x=2,2,5,5", "--runs", "3"]) == 0
    out = capsys.readouterr().out
    assert "4 nodes with code" in out and "(mean of 3," in out
    assert "conv (Conv -> float32[2,3,3,3])" in out and "fc (Gemm -> float32[2,4])" in out
    assert "to_channels_last (Transpose -> float32[2,5,5,2])" in out
    compiled = tmp_path / "compiled"
    assert main(["compile", str(model_path), "--shape", "x=2,2,5,5", "-o", str(compiled)]) == 0
    assert main(["profile", str(compiled), "--runs", "2", "--top", "1"]) == 0
    assert "slowest 1 nodes:" in capsys.readouterr().out


def test_compile_needs_dynamic_dims_fixed(model_path, tmp_path, capsys):
    assert main(["compile", str(model_path), "-o", str(tmp_path / "o")]) == 1
    assert "--shape x=" in capsys.readouterr().err


def test_run_wrong_input_shape(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    assert main(["compile", str(model_path), "--shape", "x=1,2,5,5", "-o", str(out)]) == 0
    np.save(tmp_path / "x.npy", np.zeros((3, 2, 5, 5), np.float32))
    assert main(["run", str(out), "--input", f"x={tmp_path / 'x.npy'}"]) == 1
    assert "xgen: error:" in capsys.readouterr().err


def test_run_unreadable_input(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    assert main(["compile", str(model_path), "--shape", "x=1,2,5,5", "-o", str(out)]) == 0
    assert main(["run", str(out), "--input", f"x={tmp_path / 'absent.npy'}"]) == 1
    assert "absent.npy" in capsys.readouterr().err


def test_info_counts_ops_params_and_flops(model_path, capsys):
    assert main(["info", str(model_path), "--shape", "x=1,2,5,5"]) == 0
    out = capsys.readouterr().out
    assert "Conv" in out and "Gemm" in out
    assert "parameters: 162" in out  # 3*2*3*3 + 4*27 weights; the int64 shape is not counted
    # Conv: 27 outputs x 18 MACs; Relu: 27; Reshape: 0; Gemm: 4 outputs x 27 MACs
    assert f"FLOPs: {2 * 27 * 18 + 27 + 2 * 4 * 27:,}" in out


def test_info_prints_the_fusion_plan(model_path, capsys):
    """Each kernel with the source ops it computes, and each pair left apart with the rule."""
    assert main(["info", str(model_path), "--shape", "x=1,2,5,5", "--fusion"]) == 0
    out = capsys.readouterr().out
    assert "4 kernels per inference:" in out
    assert "conv                 Conv (many-to-many): Conv + Relu" in out
    assert "to_channels_first_1 -> fc: Transpose (shuffle) moves data: a copy of its own" in out


def test_the_fusion_plan_gives_each_refusal_its_rule() -> None:
    """Read twice, a graph output, a broadcast, no epilogue, no prologue."""
    g = Graph()
    x = g.add_input("x", DType.FLOAT32, (4, 8))
    (t,) = g.add_node(Op.TANH, [x], name="tanh")  # read by two kernels
    (s,) = g.add_node(Op.SOFTMAX, [t], O.AxisAttrs(1), name="softmax")
    (e,) = g.add_node(Op.EXP, [s], name="exp")  # after a softmax, and a graph output
    (r,) = g.add_node(Op.REDUCE_SUM, [t], O.ReduceAttrs((1,), True), name="sum")
    (n,) = g.add_node(Op.NEG, [r], name="neg")  # [4, 1], broadcast into [4, 8]
    (b,) = g.add_node(Op.ADD, [e, n], name="add")
    (m,) = g.add_node(Op.SOFTMAX, [b], O.AxisAttrs(1), name="softmax2")
    g.outputs = [m, e]
    plan = {(f.producer, f.consumer): f.reason for f in fusion_plan(optimize(g)).refused}
    assert plan["tanh", "softmax"] == plan["tanh", "sum"]
    assert "read by 2 kernels" in plan["tanh", "sum"]
    assert plan["softmax", "exp"] == "Softmax has no fused epilogue"
    assert plan["sum", "neg"] == "ReduceSum has no fused epilogue"
    assert plan["exp", "add"].startswith("the producer's output is a graph output")
    assert plan["neg", "add"].startswith("(4, 1) is broadcast to (4, 8)")
    assert plan["add", "softmax2"] == "Softmax computes no elementwise prologue of its input"


def test_info_lists_unsupported_ops_without_failing(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [])
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["y"])], "det", [x], [y])
    path = tmp_path / "det.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "UNSUPPORTED" in out and "unsupported ops: Det" in out


def test_info_bad_file(tmp_path, capsys):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"garbage")
    assert main(["info", str(path)]) == 1
    assert "bad.onnx" in capsys.readouterr().err


@pytest.mark.parametrize("shape", ["x", "x=", "x=1,a", "x=0,3", "=1,2"])
def test_bad_shape_is_a_usage_error(model_path, tmp_path, shape, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compile", str(model_path), "--shape", shape, "-o", str(tmp_path)])
    assert info.value.code == 2
    assert "bad shape" in capsys.readouterr().err


def test_bench_prints_a_table(capsys, monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # bench would set it for the whole session
    # The quick peers only: torch.compile takes a minute to build even a small model.
    args = ["--models", "fmnist_cnn", "--rounds", "3", "--peers", "ort", "eager", "--no-peak"]
    assert main(["bench", *args]) == 0
    out = capsys.readouterr().out
    assert "machine:" in out and "| xgen/ort | xgen/eager |" in out
    row = next(line for line in out.splitlines() if line.startswith("| fmnist_cnn | 0.04 |"))
    assert row.endswith("| ok |")  # both peers' outputs agree with xgen's


def test_console_script_runs():
    """`python -m xgen` as a real process: the exit code reaches the shell."""
    done = subprocess.run(
        [sys.executable, "-m", "xgen", "info", "/nonexistent.onnx"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "no such model file" in done.stderr


def test_outputs_keep_their_onnx_names(tmp_path, capsys):
    """Nodes without names (as many exporters write them) must not rename the graph outputs."""
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "unnamed", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    assert main(["compile", str(path), "-o", str(tmp_path / "out")]) == 0
    np.save(tmp_path / "x.npy", np.ones((2, 3), np.float32))
    assert main(["run", str(tmp_path / "out"), "--input", str(tmp_path / "x.npy")]) == 0
    assert "y: float32[2, 3]" in capsys.readouterr().out


def test_compile_with_a_constant_input(tmp_path, capsys):
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 6])
    shape = helper.make_tensor_value_info("shape", onnx.TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    graph = helper.make_graph([node], "reshape", [x, shape], [y])
    path = tmp_path / "reshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    np.save(tmp_path / "shape.npy", np.array([4, 3]))
    out = str(tmp_path / "out")
    assert (
        main(["compile", str(path), "--const", f"shape={tmp_path / 'shape.npy'}", "-o", out]) == 0
    )
    np.save(tmp_path / "x.npy", np.ones((2, 6), np.float32))
    assert main(["run", out, "--input", str(tmp_path / "x.npy")]) == 0
    assert "y: float32[4, 3]" in capsys.readouterr().out


def test_no_winograd_keeps_the_direct_kernel(tmp_path):
    """A 3x3 conv over 32 channels at 28x28 goes to Winograd unless --no-winograd says not."""
    rng = np.random.default_rng(2)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 32, 28, 28])
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)
    w = numpy_helper.from_array(rng.standard_normal((32, 32, 3, 3)).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], pads=[1] * 4)
    graph = helper.make_graph([conv], "winograd", [x], [y], [w])
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    for flags, on in (([], True), (["--no-winograd"], False)):
        out = tmp_path / f"compiled{on}"
        assert main(["compile", str(path), "-o", str(out), *flags]) == 0
        (source,) = out.glob("*.c")
        body = source.read_text().split("xgen_run")[-1]
        assert ("xg_winograd_conv_nhwc(" in body) == on


# ---- user errors: one `xgen: error:` line and exit 1, or a usage error and exit 2 --------------


def user_error(argv: list[str], capsys) -> str:
    """The CLI's stderr for a user error: exit 1, one `xgen: error:` line, no traceback."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("xgen: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    "argv",
    [
        ["profile", "m.onnx", "--runs", "0"],
        ["profile", "m.onnx", "--top", "-1"],
        ["profile", "m.onnx", "--threads", "-3"],
        ["compile", "m.onnx", "-o", "out", "--threads", "-3"],
        ["compile", "m.onnx", "-o", "out", "--threads", "two"],
        ["bench", "--rounds", "0"],
        ["bench", "--threads", "0"],
    ],
    ids=["runs", "top", "profile-threads", "compile-threads", "not-a-number", "rounds", "bench"],
)
def test_bad_numbers_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "expected an integer >= " in capsys.readouterr().err


def test_run_into_a_missing_folder(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    assert main(["compile", str(model_path), "--shape", "x=1,2,5,5", "-o", str(out)]) == 0
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 5, 5), np.float32))
    target = tmp_path / "absent" / "y.npz"
    argv = ["run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(target)]
    assert f"{target}: No such file or directory" in user_error(argv, capsys)


def test_const_from_an_npz_archive(model_path, tmp_path, capsys):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 2, 5, 5), np.float32))
    const = f"x={tmp_path / 'x.npz'}"
    argv = ["compile", str(model_path), "--const", const, "-o", str(tmp_path / "o")]
    assert "x.npz is an .npz archive, not one .npy array" in user_error(argv, capsys)


def test_model_paths_that_are_not_files(tmp_path, capsys):
    assert "is a directory" in user_error(["info", str(tmp_path)], capsys)
    argv = ["compile", str(tmp_path), "-o", str(tmp_path / "o")]
    assert "is a directory" in user_error(argv, capsys)


def test_ctrl_c_exits_130_quietly(model_path, monkeypatch, capsys):
    import xgen.cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(xgen.cli, "cmd_info", interrupted)
    assert main(["info", str(model_path)]) == 130
    assert capsys.readouterr().err == ""


def test_option_errors_name_the_cli_option(model_path, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 2, 5, 5), np.float32))
    out = str(tmp_path / "o")
    argv = ["compile", str(model_path), "--const", str(tmp_path / "x.npy"), "-o", out]
    assert "x.npy': expected NAME=FILE.npy\n" in user_error(argv, capsys)  # not "inputs []"
    argv = ["compile", str(model_path), "--shape", "x=1,2,5,5", "--shape", "q=1", "-o", out]
    assert "input_shapes (--shape) names ['q']" in user_error(argv, capsys)


# ---- CLI basics: --version, python -m xgen, -v/-q, --json, --threads, --time ------------------


def test_version_names_xgen_onnx_numpy_and_the_compiler(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert out.startswith(f"xgen {xgen.__version__} (onnx {onnx.__version__}, numpy ")
    assert ", cc " in out or "gcc" in out or "clang" in out, out


def json_out(argv: list[str], capsys) -> dict:
    """The one JSON document a command prints on stdout."""
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_every_command_prints_json(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    summary = json_out(["compile", str(model_path), "--shape", "x=2,2,5,5", "-o", str(out)], capsys)
    assert summary["outputs"] == [{"name": "y", "dtype": "float32", "shape": [2, 4]}]
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    run = json_out(["run", str(out), "--input", str(tmp_path / "x.npy"), "--time", "3"], capsys)
    y = run["outputs"]["y"]
    assert (y["dtype"], y["shape"]) == ("float32", [2, 4])
    np.testing.assert_allclose(y["values"], expected(x, model_path), rtol=1e-4, atol=1e-5)
    times = run["time_ms"]
    assert times["runs"] == 3 and 0 < times["p10"] <= times["median"] <= times["p90"]
    info = json_out(["info", str(model_path), "--shape", "x=2,2,5,5", "--fusion"], capsys)
    assert info["ops"] == {"Conv": 1, "Gemm": 1, "Relu": 1, "Reshape": 1}
    assert info["flops"] > 0 and info["fusion"][0].endswith("kernels per inference:")
    profile = json_out(["profile", str(out), "--runs", "2"], capsys)
    assert {n["node"] for n in profile["nodes"]} >= {"conv", "fc"}
    assert profile["total_ms"] == pytest.approx(sum(n["ms"] for n in profile["nodes"]))


def test_json_spells_non_finite_values_as_strings():
    values = _values(np.array([[1.5, np.nan], [np.inf, -np.inf]], np.float32))
    assert json.loads(json.dumps(values, allow_nan=False)) == [[1.5, "nan"], ["inf", "-inf"]]


def test_run_time_prints_median_and_spread(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    assert main(["compile", str(model_path), "--shape", "x=1,2,5,5", "-o", str(out)]) == 0
    np.save(tmp_path / "x.npy", np.ones((1, 2, 5, 5), np.float32))
    assert main(["run", str(out), "--input", str(tmp_path / "x.npy"), "--time", "4"]) == 0
    assert re.search(r"time: [\d.]+ ms median \([\d.]+-[\d.]+ p10-p90\) over 4 runs",
                     capsys.readouterr().out)  # fmt: skip


def test_compile_threads_is_saved_and_run_threads_overrides_it(model_path, tmp_path, capsys):
    out = tmp_path / "compiled"
    compile_argv = ["compile", str(model_path), "--shape", "x=1,2,5,5", "-o", str(out)]
    assert main([*compile_argv, "--threads", "1"]) == 0
    assert json.loads((out / "manifest.json").read_text())["threads"] == 1
    np.save(tmp_path / "x.npy", np.ones((1, 2, 5, 5), np.float32))
    run = ["run", str(out), "--input", str(tmp_path / "x.npy"), "--time", "1"]
    capsys.readouterr()
    assert json_out(run, capsys)["time_ms"]["threads"] == 1
    assert json_out([*run, "--threads", "2"], capsys)["time_ms"]["threads"] == 2


def test_verbose_says_each_step_and_quiet_only_results(model_path, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XGEN_CACHE_DIR", str(tmp_path / "cache"))  # a miss, then a hit
    out = tmp_path / "compiled"
    argv = ["compile", str(model_path), "--shape", "x=1,2,5,5", "-o", str(out)]
    assert main(["-v", *argv]) == 0
    err = capsys.readouterr().err
    assert "xgen: importing" in err and "compile cache miss" in err, err
    assert main([*argv, "--overwrite", "-v"]) == 0  # -v after the command works too
    assert "compile cache hit" in capsys.readouterr().err
    np.save(tmp_path / "x.npy", np.ones((1, 2, 5, 5), np.float32))
    run = ["run", str(out), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")]
    assert main(run) == 0
    assert capsys.readouterr().err == f"xgen: wrote y to {tmp_path / 'y.npz'}\n"
    assert main(["-q", *run]) == 0
    quiet = capsys.readouterr()
    assert quiet.err == "" and "y: float32[1, 4]" in quiet.out
