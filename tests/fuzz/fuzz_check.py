"""The rule a fuzz case is held to, in two halves.

In the worker process, `check` compiles and runs the case with xgen and then onnxruntime and
sends what happened, step by step, so that a crash is pinned on the step it happened in. In the
parent, `judge` turns those messages (and the worker's death, if it died) into an Outcome:
  - the worker killed by a signal or timed out in xgen = failure;
  - any exception other than an xgen.errors.XgenError subclass = failure, and so is a
    CompilerError on the C xgen generated (xgen's own bug, by its message);
  - outputs that differ from onnxruntime's, where onnxruntime accepts the model = failure.
onnxruntime's max/min reductions and pools skip a NaN unless it comes first in the window, where
xgen follows numpy and propagates it: a NaN of xgen's where onnxruntime has a number passes only
where xgen's numpy reference (xgen.reference) has the NaN too.
Constants beyond HUGE in magnitude (mutated weight bytes) make float32 results depend on the order
of operations (onnxruntime's InstanceNormalization variance overflows where xgen's does not, a
sum overflows to -inf in one and not the other): such cases compare output names, shapes and
dtypes, not values.
Whatever onnxruntime does with a model xgen rejects is not looked at; where onnxruntime rejects
or crashes on a model xgen accepts, only the first two rules apply.
"""

from __future__ import annotations

import contextlib
import math
import os
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

import xgen
from xgen import reference
from xgen.errors import XgenError
from xgen.frontend.onnx import import_onnx

Send = Callable[[tuple], None]
Arrays = list[tuple[str, np.ndarray]]  # (name, value) in the model's order
Build = Callable[[bytes], tuple[Arrays, Arrays]]  # model bytes -> (feeds, xgen's outputs)

CRASH, TIMEOUT, RAW, WRONG = "crash", "timeout", "raw exception", "wrong output"
BUILD = "generated C rejected"
REJECTED, CORRECT, UNCHECKED = "rejected by xgen", "accepted and correct", "accepted, unchecked"
FAILURES = (CRASH, TIMEOUT, RAW, BUILD, WRONG)
CATEGORIES = (*FAILURES, REJECTED, CORRECT, UNCHECKED)

# Feeds bigger than this are not generated: the case counts as accepted, unchecked.
MAX_FEED_BYTES = 64 << 20
RTOL = 1e-3  # and an absolute tolerance of RTOL times the output's largest finite magnitude
HUGE = 1e15  # finite float constants beyond it leave values unchecked


@dataclass(frozen=True)
class Outcome:
    category: str
    message: str

    @property
    def failed(self) -> bool:
        return self.category in FAILURES


# ---- worker side -------------------------------------------------------------------------------


def compile_and_run(data: bytes) -> tuple[Arrays, Arrays]:
    """xgen's outputs for random feeds (seeded by the model's bytes): (feeds, outputs)."""
    compiled = xgen.compile(data, cache_dir=os.environ.get("XGEN_FUZZ_CACHE"), threads=1)
    feeds = random_feeds(compiled.inputs, zlib.crc32(data))
    outputs = compiled.run(dict(feeds))
    return feeds, [(name, outputs[name]) for name in compiled.output_names]


class FeedsTooLarge(Exception):
    """The harness will not allocate such inputs (not xgen's failure)."""


def random_feeds(specs: tuple, seed: int) -> Arrays:
    """Normal floats, small signed integers (zero included) and random booleans."""
    nbytes = sum(math.prod(s.shape) * s.dtype.itemsize for s in specs)
    if nbytes > MAX_FEED_BYTES:
        raise FeedsTooLarge(f"inputs {[str(s) for s in specs]} are over {MAX_FEED_BYTES} bytes")
    rng = np.random.default_rng(seed)
    feeds = []
    for spec in specs:
        dtype = spec.dtype.numpy
        if dtype.kind == "f":
            value = rng.standard_normal(spec.shape).astype(dtype)
        elif dtype.kind == "b":
            value = rng.random(spec.shape) < 0.5
        else:
            low = 0 if dtype.kind == "u" else -4
            value = rng.integers(low, 5, spec.shape).astype(dtype)
        feeds.append((spec.name, value))
    return feeds


def run_onnxruntime(data: bytes, feeds: Arrays) -> Arrays:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 4  # errors come back as exceptions; keep the log quiet
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return list(zip(names, session.run(None, dict(feeds)), strict=True))


def run_reference(data: bytes, feeds: Arrays) -> Arrays:
    graph = import_onnx(data)
    with np.errstate(all="ignore"):  # NaN and overflow are what the fuzzer feeds it
        result = reference.run(graph, dict(feeds))
    return [(v.name, result[v.name]) for v in graph.outputs]


def largest_constant(data: bytes) -> float:
    """The largest finite magnitude among the model's float initializers and Constant nodes."""
    model = onnx.ModelProto.FromString(data)  # xgen read it: it parses
    tensors = list(model.graph.initializer) + [
        a.t
        for n in model.graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.type == onnx.AttributeProto.TENSOR
    ]
    largest = 0.0
    for tensor in tensors:
        with contextlib.suppress(Exception):  # a tensor xgen did not need may not decode
            array = numpy_helper.to_array(tensor)
            if array.dtype.kind == "f" and array.size:
                finite = np.abs(array[np.isfinite(array)], dtype=np.float64)
                largest = max(largest, float(finite.max(initial=0.0)))
    return largest


def check(data: bytes, send: Send, build: Build = compile_and_run) -> None:
    """Runs one case, sending ("xgen_error" | "raw" | "unchecked" | "xgen_ok", ...) and then,
    after "xgen_ok", the numpy reference's outputs ("ref_ok", outputs) if it has them and
    onnxruntime's ("ort_ok", outputs) or ("ort_error", message)."""
    try:
        feeds, outputs = build(data)
    except FeedsTooLarge as e:
        send(("unchecked", str(e)))
        return
    except XgenError as e:
        send(("xgen_error", type(e).__name__, str(e)))
        return
    except BaseException as e:  # noqa: BLE001 - anything else is the failure being looked for
        send(("raw", type(e).__name__, str(e), traceback.format_exc(limit=-4)))
        return
    send(("xgen_ok", feeds, outputs))
    send(("largest_constant", largest_constant(data)))
    with contextlib.suppress(Exception):  # only a tie-breaker: judge does without it
        send(("ref_ok", run_reference(data, feeds)))
    try:
        expected = run_onnxruntime(data, feeds)
    except Exception as e:
        send(("ort_error", f"{type(e).__name__}: {e}"))
        return
    send(("ort_ok", expected))


# ---- parent side -------------------------------------------------------------------------------


def judge(messages: list[tuple], death: str | None) -> Outcome:
    """The outcome of a case from what its worker sent and, if it died or hung, how."""
    by_kind = {m[0]: m for m in messages}
    if "xgen_ok" not in by_kind:
        return _judge_xgen(by_kind, death)
    if "ort_ok" not in by_kind:
        reason = by_kind.get("ort_error", (None, f"after xgen ran, the worker {death}"))[1]
        return Outcome(UNCHECKED, reason[:500])
    _, _, actual = by_kind["xgen_ok"]
    reference = by_kind["ref_ok"][1] if "ref_ok" in by_kind else None
    largest = by_kind.get("largest_constant", (None, 0.0))[1]
    mismatch = compare(actual, by_kind["ort_ok"][1], reference, values=largest <= HUGE)
    if mismatch:
        return Outcome(WRONG, mismatch)
    if largest > HUGE:
        return Outcome(UNCHECKED, f"values not compared: a constant of magnitude {largest:.3g}")
    return Outcome(CORRECT, "")


def _judge_xgen(by_kind: dict[str, tuple], death: str | None) -> Outcome:
    if "raw" in by_kind:
        _, kind, message, trace = by_kind["raw"]
        return Outcome(RAW, f"{kind}: {message[:300]}\n{trace}")
    if "xgen_error" in by_kind:
        _, kind, message = by_kind["xgen_error"]
        category = BUILD if kind == "CompilerError" and "bug in xgen" in message else REJECTED
        return Outcome(category, f"{kind}: {message[:1000]}")
    if "unchecked" in by_kind:
        return Outcome(UNCHECKED, by_kind["unchecked"][1])
    if death and death.startswith("timed out"):
        return Outcome(TIMEOUT, f"xgen {death}")
    return Outcome(CRASH, f"xgen {death or 'sent nothing'}")


def compare(
    actual: Arrays, expected: Arrays, reference: Arrays | None = None, values: bool = True
) -> str | None:
    """What differs between xgen's and onnxruntime's outputs, or None: names, shapes, dtypes,
    and with `values`, integers and booleans exactly, NaN and infinity positions exactly, other
    floats within RTOL of the output's magnitude; a NaN where onnxruntime has a number only where
    the reference (the same outputs from xgen's numpy reference) has a NaN too."""
    nan_in_reference = _nan_masks(reference, actual)
    if [n for n, _ in actual] != [n for n, _ in expected]:
        return f"output names {[n for n, _ in actual]}, onnxruntime {[n for n, _ in expected]}"
    for (name, a), (_, e) in zip(actual, expected, strict=True):
        e = np.asarray(e)
        if a.shape != e.shape or a.dtype != e.dtype:
            return f"{name}: {a.dtype}{list(a.shape)}, onnxruntime {e.dtype}{list(e.shape)}"
        if not values:
            continue
        if a.dtype.kind != "f":
            bad = a != e
        else:
            finite = np.isfinite(e)
            scale = float(np.abs(e[finite]).max()) if finite.any() else 0.0
            with np.errstate(invalid="ignore", over="ignore"):
                close = np.abs(a - e) <= RTOL * (np.abs(e) + scale)
            bad = np.where(finite, ~close, ~((a == e) | (np.isnan(a) & np.isnan(e))))
            bad &= ~(np.isnan(a) & ~np.isnan(e) & nan_in_reference.get(name, False))
        if bad.any():
            i = tuple(int(j) for j in np.argwhere(bad)[0])
            return f"{name}: {int(bad.sum())} of {a.size} differ, e.g. at {i}: {a[i]!r} vs {e[i]!r}"
    return None


def _nan_masks(reference: Arrays | None, actual: Arrays) -> dict[str, np.ndarray]:
    """Where the reference has NaN, per output it has in the shape and dtype xgen gave."""
    kinds = {name: (a.shape, a.dtype) for name, a in actual if a.dtype.kind == "f"}
    return {
        name: np.isnan(r)
        for name, r in reference or []
        if isinstance(r, np.ndarray) and (r.shape, r.dtype) == kinds.get(name)
    }
