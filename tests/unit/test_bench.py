"""The pure parts of xgen.bench: ratios, the output agreement check and the markdown table."""

from __future__ import annotations

import numpy as np
import pytest

from xgen.bench.peak import measure, measure_linear, microkernel_peak, sgemm_library
from xgen.bench.peers import PEERS, Peer, available, rss_bytes
from xgen.bench.report import BenchResult, PeerResult, RunInfo, markdown, relative_error


def result(peers: dict[str, PeerResult]) -> BenchResult:
    return BenchResult("net", 2_000_000_000, 10.0, 3 * 2**20, 1.5, 0.25, peers)


def test_ratio_is_xgen_over_peer():
    r = result({"ort": PeerResult(20.0, 0.0), "eager": PeerResult(5.0, 0.0)})
    assert r.ratio("ort") == pytest.approx(0.5)  # xgen twice as fast
    assert r.ratio("eager") == pytest.approx(2.0)
    assert r.ratio("openvino") is None  # did not run
    assert r.gflops_per_s == pytest.approx(200.0)  # 2 GFLOP in 10 ms


def test_relative_error_scales_by_the_reference():
    ref = [np.array([[1.0, -4.0]], np.float32), np.array([2.0], np.float32)]
    close = [ref[0] + np.float32(2e-3), ref[1]]
    assert relative_error(ref, close) == pytest.approx(2e-3 / 4, rel=1e-3)
    assert relative_error(ref, ref) == 0.0


@pytest.mark.parametrize(
    "other",
    [
        [np.zeros((1, 2), np.float32)],  # an output missing
        [np.zeros((2, 1), np.float32), np.zeros(1, np.float32)],  # a wrong shape
        [np.array([[np.nan, 0.0]], np.float32), np.zeros(1, np.float32)],  # NaN
    ],
)
def test_relative_error_is_infinite_for_mismatched_outputs(other):
    ref = [np.array([[1.0, -4.0]], np.float32), np.array([2.0], np.float32)]
    assert relative_error(ref, other) == float("inf")


def test_agreement_threshold():
    r = result({"ort": PeerResult(20.0, 1e-3), "openvino": PeerResult(8.0, 2e-3)})
    assert r.peers["ort"].agrees and not r.peers["openvino"].agrees
    assert r.disagreeing() == {"openvino": 2e-3}


def test_markdown_table():
    peers = {"ort": PeerResult(20.0, 1e-5, 40 * 2**20), "compile": PeerResult(8.0, 0.5)}
    info = RunInfo(threads=2, rounds=10, peak_gflops=400.0, spin=False)
    text = markdown([result(peers)], ["ort", "openvino", "compile"], ["ort", "openvino"], info)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| model | GFLOP"))
    assert "| xgen/ort | xgen/openvino | xgen/compile |" in header
    assert "below 1 means xgen is faster" in text and "400.0 GFLOP/s" in text
    assert "OMP_WAIT_POLICY=passive, onnxruntime allow_spinning=0" in text
    # 2 GFLOP, 10 ms; ort 20 ms (0.50x); openvino absent; compile 8 ms (1.25x) and disagrees;
    # 200 GFLOP/s is 50% of the 400 GFLOP/s peak.
    row = "| net | 2.00 | 10.00 | 20.00 | - | 8.00 | 0.50x | - | 1.25x | 200.0 | 50% |"
    assert row + " DIFFER compile 5.0e-01 |" in lines
    assert "| net | 3 | 40 | - | 1.5 | 0.25 |" in lines
    tables = [block.splitlines() for block in text.split("\n\n") if block.startswith("|")]
    assert len(tables) == 2
    for table in tables:  # every row, the separator too, has as many cells as the header
        assert len({line.count("|") for line in table}) == 1


def test_markdown_without_peak():
    text = markdown([result({})], [], [], RunInfo(threads=2, rounds=3, peak_gflops=None, spin=True))
    assert "not measured" in text
    assert "| net | 2.00 | 10.00 | 200.0 | - | ok |" in text


def test_peers_are_named_and_rss_is_read():
    assert list(PEERS) == ["ort", "openvino", "eager", "compile"]
    assert rss_bytes() > 0


def test_peak_wrappers_measure_and_compute_right():
    with sgemm_library() as lib:
        for run in (measure, measure_linear):
            gflops, error = run(lib, 67, 45, 300, threads=2)
            assert gflops > 0 and error < 1e-5, run.__name__
        assert 0 < microkernel_peak(lib, threads=2, reps=500) < float("inf")


def test_a_peer_that_cannot_be_imported_is_skipped(monkeypatch, capsys):
    absent = Peer("absent", "no_such_package_xgen", PEERS["ort"].create, owns_weights=True)
    monkeypatch.setitem(PEERS, "absent", absent)
    assert [p.name for p in available(["absent", "ort"])] == ["ort"]
    assert "skipping peer absent: cannot import no_such_package_xgen" in capsys.readouterr().out


def test_fusion_metrics_count_kernels_and_bytes_written():
    """Conv -> Add (residual) -> Relu, then Sigmoid -> Mul: fused, the conv's epilogue takes
    the Add and Relu and the two elementwise ops are one loop; unfused, five kernels each write
    their output. The model computes the same either way."""
    import onnx
    from onnx import helper, numpy_helper

    import xgen
    from xgen.bench.fusion import kernels_and_bytes

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 8, 3, 3)).astype(np.float32) / 9, "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c", "x"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["s"]),
        helper.make_node("Mul", ["r", "s"], ["y"]),
    ]
    shape = (1, 8, 6, 6)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)
    y = helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, shape)
    graph = helper.make_graph(nodes, "fusion", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    data = model.SerializeToString()
    kernels_on, written_on = kernels_and_bytes(data, fusion=True)
    kernels_off, written_off = kernels_and_bytes(data, fusion=False)
    assert kernels_off == kernels_on + 3  # Add, Relu and one of Sigmoid / Mul
    assert written_off - written_on == 3 * 4 * np.prod(shape)  # their outputs
    feed = rng.standard_normal(shape).astype(np.float32)
    fused, unfused = (xgen.compile(model, fusion=f)(feed) for f in (True, False))
    np.testing.assert_allclose(fused, unfused, rtol=1e-5, atol=1e-6)


def test_fusion_table_flags_outputs_that_differ_from_fused_xgen():
    from xgen.bench.fusion import FusionResult, markdown
    from xgen.bench.runner import Settings

    ms = {"xgen fused": 1.0, "xgen unfused": 1.25, "ort": 2.0}
    agree = FusionResult("net", 9, {True: 3, False: 5}, 4, {True: 0, False: 8}, ms,
                         {"xgen unfused": 1e-6, "ort": 2e-4})  # fmt: skip
    differ = FusionResult("bad", 9, {True: 3, False: 5}, 4, {True: 0, False: 8}, ms,
                          {"xgen unfused": 0.5, "ort": 2e-4})  # fmt: skip
    lines = markdown([agree, differ], Settings(rounds=3, threads=2, spin=False)).splitlines()
    assert lines[-2].endswith("| 0.80x | 0.50x | ok |")
    assert lines[-1].endswith("| 0.80x | 0.50x | DIFFER xgen unfused 5.0e-01 |")
    assert len({line.count("|") for line in lines if line.startswith("|")}) == 1


def test_onnxruntime_loads_without_the_fusion_that_fails_on_optimized_graphs(monkeypatch):
    """onnxruntime 1.32 fails to load the MiniLM graph its transformer optimizer writes (its
    MatMulAddFusion stops); the peer then loads it without that fusion, and only then."""
    import onnxruntime as ort

    from xgen.bench.peers import FAILING_FUSION, REPLACED_TENSOR, Workload

    created = []

    class Session:
        def __init__(self, data, options, providers, disabled_optimizers=()):
            created.append(list(disabled_optimizers))
            if FAILING_FUSION not in disabled_optimizers:
                raise RuntimeError(f"[ONNXRuntimeError] : 1 : FAIL : {REPLACED_TENSOR} x")

        def run(self, names, feeds):
            return [feeds["x"] * 2]

    monkeypatch.setattr(ort, "InferenceSession", Session)
    x = np.ones(3, np.float32)
    work = Workload(None, b"model", {"x": x}, None, (), threads=1, spin=False)
    np.testing.assert_array_equal(PEERS["ort"].create(work)()[0], 2 * x)
    assert created == [[], [FAILING_FUSION]]

    class Broken(Session):
        def __init__(self, *args, **kwargs):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : something else")

    monkeypatch.setattr(ort, "InferenceSession", Broken)
    with pytest.raises(RuntimeError, match="something else"):
        PEERS["ort"].create(work)
