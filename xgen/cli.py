"""The xgen command line: compile, run, info, profile, bench, compress, demo.

Results go to stdout (one JSON document with --json); notes, warnings and errors go to stderr
through the "xgen" logger, whose one handler main sets up: -q keeps errors only, -v adds what
xgen is doing (import, passes, C generation, compile cache hit or miss).
Exit codes: 0 success, 1 an xgen error (bad model, unsupported op, bad input, compiler failure)
or a file that cannot be read or written, 2 a usage error (argparse), 130 interrupted (Ctrl-C).
Each error is one `xgen: error: ...` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xgen.errors import InputError, XgenError

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.data import DataLoader

    from xgen.runtime.model import CompiledModel

log = logging.getLogger(__name__)
NOTE = logging.WARNING - 5  # a CLI note ("wrote out.npz"): shown unless -q, as warnings are


def positive_int(text: str) -> int:
    """An argparse type: an int of at least 1 (--runs, --rounds...)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an int of at least 0 (--threads, where 0 is OpenMP's default)."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    if value is None or value < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
    return value


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """ "x=1,3,224,224" -> ("x", (1, 3, 224, 224))."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(",")) if dims else ()
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(
            f"bad shape {text!r}: expected NAME=D1,D2,... with positive sizes"
        )
    return name, shape


def _shapes(items: list[tuple[str, tuple[int, ...]]] | None) -> dict[str, tuple[int, ...]]:
    return dict(items or [])


def _winograd_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-winograd",
        dest="winograd",
        action="store_false",
        help="keep dense 3x3 convs on the direct kernel (smaller rounding errors)",
    )


def cmd_compile(args: argparse.Namespace) -> int:
    import xgen
    from xgen.runtime.artifact import check_target

    check_target(args.output, args.overwrite, knob="--overwrite")  # before compiling, not after
    constants = _read_arrays(args.const or [], "--const")
    model = xgen.compile(
        args.model,
        _shapes(args.shape),
        constant_inputs=constants,
        threads=args.threads,
        winograd=args.winograd,
    )
    model.save(args.output, overwrite=args.overwrite)
    if args.json:
        return _print_json(
            {
                "model": str(args.model),
                "output": str(args.output),
                "inputs": [s.to_json() for s in model.inputs],
                "outputs": [s.to_json() for s in model.outputs],
                "threads": args.threads or 0,
            }
        )
    print(f"compiled {args.model} -> {args.output}")
    print(f"  inputs:  {', '.join(model.input_names)}")
    print(f"  outputs: {', '.join(model.output_names)}")
    return 0


def _print_json(document: dict) -> int:
    """The command's results as one JSON document on stdout."""
    print(json.dumps(document, indent=2))
    return 0


def _read_arrays(
    specs: list[str], option: str, input_names: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """NAME=FILE.npy specs as arrays; a bare FILE.npy names the only one of input_names."""
    feeds = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            if len(input_names) != 1:
                known = f"; the model has inputs {list(input_names)}" if input_names else ""
                raise InputError(f"{option} {spec!r}: expected NAME=FILE.npy{known}")
            name, path = input_names[0], spec
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise InputError(f"cannot read input {name!r} from {path!r}: {e}") from None
        if not isinstance(array, np.ndarray):  # an .npz archive of several arrays
            array.close()
            raise InputError(f"{option} {spec!r}: {path} is an .npz archive, not one .npy array")
        feeds[name] = array
    return feeds


def cmd_run(args: argparse.Namespace) -> int:
    import xgen
    from xgen.bench.report import Spread  # xgen.bench imports this module: not at the top

    model = xgen.load(args.model_dir, threads=args.threads)
    feeds = _read_arrays(args.input, "--input", model.input_names)
    outputs = model.run(feeds)
    if args.output:
        np.savez(args.output, **outputs)
        log.log(NOTE, "wrote %s to %s", ", ".join(outputs), args.output)
    times = _time_runs(model, feeds, args.time) if args.time else None
    if args.json:
        document: dict = {
            "outputs": {
                name: {"dtype": str(v.dtype), "shape": list(v.shape), "values": _values(v)}
                for name, v in outputs.items()
            }
        }
        if times is not None:
            document["time_ms"] = asdict(Spread.of(times)) | {
                "runs": len(times), "threads": model.threads
            }
        return _print_json(document)
    for name, value in outputs.items():
        flat = value.reshape(-1)
        head = np.array2string(flat[:8], precision=5, separator=", ")
        print(f"{name}: {value.dtype}{list(value.shape)} {head}{' ...' if flat.size > 8 else ''}")
    if times is not None:
        spread = Spread.of(times)
        print(f"time: {spread.median:.3f} ms median ({spread.p10:.3f}-{spread.p90:.3f} "
              f"p10-p90) over {len(times)} runs, {model.threads} threads")  # fmt: skip
    return 0


def _values(array: np.ndarray) -> list:
    """The array as nested JSON lists; NaN and infinities, which JSON lacks, as "nan", "inf"
    and "-inf"."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        array = np.where(np.isfinite(array), array.astype(object), array.astype(str))
    return array.tolist()


def _time_runs(model: CompiledModel, feeds: dict[str, np.ndarray], runs: int) -> list[float]:
    """Milliseconds of each of `runs` runs, after the run that produced the outputs (a warm-up:
    first touch of the arena, OpenMP's threads started)."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model.run(feeds)
        times.append((time.perf_counter() - start) * 1000)
    return times


def cmd_info(args: argparse.Namespace) -> int:
    info = _model_info(args.model, _shapes(args.shape), args.fusion)
    if args.json:
        return _print_json(info)
    print(f"{args.model}: {info['onnx_nodes']} ONNX nodes")
    for op, n in info["ops"].items():
        print(f"  {op:<28}{n:>6}{'   UNSUPPORTED' if op in info['unsupported'] else ''}")
    if info["unsupported"]:
        print(f"unsupported ops: {', '.join(info['unsupported'])}")
    if "import_error" in info:
        print(f"import failed, no FLOP count: {info['import_error']}")
        return 0
    print(f"inputs:  {', '.join(info['inputs'])}")
    print(f"outputs: {', '.join(info['outputs'])}")
    mib = info["parameter_bytes"] / 2**20
    print(f"parameters: {info['parameters']:,} ({mib:.1f} MiB of constants)")
    flops = info["flops"]
    print(f"FLOPs: {flops:,} ({flops / 1e9:.3f} GFLOP, multiply-add = 2)")
    print(f"IR nodes after folding: {info['ir_nodes']}")
    if args.fusion:
        print("\n".join(info["fusion"]))
    return 0


def _model_info(path: str, shapes: dict[str, tuple[int, ...]], fusion: bool) -> dict:
    """What `xgen info` reports, as JSON-ready values; "import_error" when the model cannot be
    imported (the op counts still help to see why)."""
    from xgen.frontend.onnx import import_onnx, load_model, supported_ops
    from xgen.ir.stats import graph_stats

    model = load_model(path)
    counts = Counter(node.op_type for node in model.graph.node)
    info: dict = {
        "model": str(path),
        "onnx_nodes": len(model.graph.node),
        "ops": dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))),
        "unsupported": sorted(set(counts) - set(supported_ops())),
    }
    try:
        graph = import_onnx(model, shapes)
    except XgenError as e:
        return info | {"import_error": str(e)}
    stats = graph_stats(graph)
    info |= {
        "inputs": [f"{v.name} {v.type}" for v in graph.inputs],
        "outputs": [f"{v.name} {v.type}" for v in graph.outputs],
        "parameters": stats.parameters,
        "parameter_bytes": stats.parameter_bytes,
        "flops": stats.flops,
        "ir_nodes": sum(stats.op_counts.values()),
    }
    if fusion:
        from xgen.passes import optimize
        from xgen.passes.fusion_report import fusion_plan

        info["fusion"] = fusion_plan(optimize(graph)).lines()
    return info


def cmd_profile(args: argparse.Namespace) -> int:
    import xgen

    if Path(args.model).is_dir():
        model = xgen.load(args.model, threads=args.threads)
    else:
        model = xgen.compile(
            args.model, _shapes(args.shape), threads=args.threads, winograd=args.winograd
        )
    rng = np.random.default_rng(0)  # random floats; integer inputs (token ids...) are zeros
    feeds = {
        s.name: rng.standard_normal(s.shape).astype(s.dtype.numpy)
        if s.dtype.is_float
        else np.zeros(s.shape, s.dtype.numpy)
        for s in model.inputs
    }
    rows = model.profile(feeds, args.runs)
    total = sum(row.ms for row in rows)
    by_op = Counter[str]()
    for row in rows:
        by_op[row.op] += row.ms
    if args.json:
        return _print_json(
            {
                "model": model.name,
                "runs": args.runs,
                "threads": model.threads,
                "total_ms": total,
                "ops_ms": dict(by_op.most_common()),
                "nodes": [vars(row) for row in rows],  # in graph order
            }
        )
    print(f"{model.name}: {len(rows)} nodes with code, {total:.3f} ms per run "
          f"(mean of {args.runs}, {model.threads} threads)")  # fmt: skip
    print(f"{'op':<28}{'ms':>9}{'%':>7}")
    for op, ms in by_op.most_common():
        print(f"{op:<28}{ms:>9.3f}{100 * ms / total:>7.1f}")
    print(f"\nslowest {min(args.top, len(rows))} nodes:")
    for row in sorted(rows, key=lambda r: -r.ms)[: args.top]:
        print(f"{row.ms:>9.3f} ms  {row.node} ({row.op} -> {row.output})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from xgen import bench

    return bench.main(args.rest)  # bench parses its own options


def parse_layer_rate(text: str) -> tuple[str, float]:
    """ "features.3=0.5" -> ("features.3", 0.5)."""
    name, sep, rate = text.rpartition("=")
    try:
        value = float(rate)
    except ValueError:
        value = None
    if not sep or not name or value is None:
        raise argparse.ArgumentTypeError(f"bad layer rate {text!r}: expected NAME=RATE")
    return name, value


def cmd_compress(args: argparse.Namespace) -> int:
    from xgen.compress import (  # torch: imported only by this command
        CompressConfig,
        OptimizerConfig,
        PruneConfig,
        Schedule,
        compress,
        export_onnx,
    )

    if args.out.exists() and not args.overwrite:  # before hours of training, not after
        raise InputError(f"{args.out} already exists: pass --overwrite to replace it")
    config = CompressConfig(
        prune=PruneConfig(
            connectivity_rate=args.rate,
            layer_rates=dict(args.layer_rate or []),
            library_size=args.patterns,
        ),
        schedule=Schedule(args.schedule),
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        optimizer=OptimizerConfig(lr=args.lr),
        seed=args.seed,
        device=args.device,
    )
    model = _build_model(args.model)
    if args.checkpoint:
        _load_checkpoint(model, args.checkpoint)
    train, test = _data_loaders(args.data, args.batch_size, args.seed)
    result = compress(model, train, test, config)
    example = next(iter(test))[0][:1]  # batch 1: static shapes, as edge inference runs
    export_onnx(result.model, example, args.out, result.structure, overwrite=args.overwrite)
    print(result.report)
    log.log(NOTE, "wrote %s (structure in its metadata_props)", args.out)
    return 0


def _build_model(spec: str) -> nn.Module:
    """MODULE:FACTORY -> FACTORY() (a class or a function of no arguments)."""
    from torch import nn

    module_name, sep, factory_name = spec.partition(":")
    if not sep or not module_name or not factory_name:
        raise InputError(
            f"--model {spec!r}: expected MODULE:FACTORY, e.g. xgen.zoo.fmnist_vgg:FashionVGG"
        )
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except ImportError as e:
        raise InputError(f"--model {spec!r}: cannot import {module_name!r}: {e}") from None
    except AttributeError:
        raise InputError(f"--model {spec!r}: {module_name} has no {factory_name!r}") from None
    model = factory()
    if not isinstance(model, nn.Module):
        raise InputError(f"--model {spec!r} made a {type(model).__name__}, not a torch.nn.Module")
    return model


def _load_checkpoint(model: nn.Module, path: Path) -> None:
    """A state_dict saved by torch.save (float16 values are upcast by load_state_dict)."""
    import pickle

    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (OSError, RuntimeError, TypeError, AttributeError, pickle.UnpicklingError) as e:
        raise InputError(f"--checkpoint {path}: not a state_dict of this model: {e}") from None


def _data_loaders(name: str, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    """(train, test) loaders of --data, whose only choice so far is fashion-mnist."""
    from xgen.data.fashion_mnist import fashion_mnist_loaders

    return fashion_mnist_loaders(batch_size, augment=True, seed=seed)


def cmd_demo(args: argparse.Namespace) -> int:
    from xgen import demo

    return demo.main()


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the results as one JSON document on stdout")  # fmt: skip


def _verbosity_options(p: argparse.ArgumentParser, default: object) -> None:
    """-v/-q, before the command or after it (there, default=SUPPRESS keeps the one before)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", dest="verbosity", action="store_const", const=1,
                       default=default, help="say what xgen is doing, step by step")  # fmt: skip
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=-1,
                       default=default, help="print results and errors only")  # fmt: skip


class _VersionAction(argparse.Action):
    """--version: xgen's, and those of the libraries and compiler it builds with."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object):
        super().__init__(option_strings, dest, nargs=0, help="print versions and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(version_text())
        parser.exit()


def version_text() -> str:
    import onnx

    import xgen
    from xgen.codegen.cc import find_compiler

    try:
        compiler = find_compiler().version
    except XgenError:
        compiler = "no C compiler found"
    return f"xgen {xgen.__version__} (onnx {onnx.__version__}, numpy {np.__version__}, {compiler})"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xgen", description="Compile DNNs (ONNX, PyTorch) into fast generated C."
    )
    parser.add_argument("--version", action=_VersionAction)
    _verbosity_options(parser, default=0)
    common = argparse.ArgumentParser(add_help=False)
    _verbosity_options(common, default=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compile", help="compile an ONNX model into a directory",
                       parents=[common])  # fmt: skip
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--shape", action="append", type=parse_shape, metavar="NAME=D1,D2,...",
                   help="fix an input's shape (repeat for several inputs)")  # fmt: skip
    p.add_argument("--const", action="append", metavar="NAME=FILE.npy",
                   help="fix an input's value (a shape or axes tensor) when compiling")  # fmt: skip
    p.add_argument("-o", "--output", required=True, type=Path, help="output directory")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the model files in --output if it is not empty")  # fmt: skip
    p.add_argument("--threads", type=non_negative_int, default=None,
                   help="threads a run uses, saved with the model (default OpenMP's)")  # fmt: skip
    _winograd_option(p)
    _json_option(p)
    p.set_defaults(handler=cmd_compile)

    p = sub.add_parser("run", help="run a compiled model on .npy inputs", parents=[common])
    p.add_argument("model_dir", type=Path, help="a directory written by `xgen compile`")
    p.add_argument("--input", action="append", required=True, metavar="NAME=FILE.npy",
                   help="an input array (repeat for several inputs)")  # fmt: skip
    p.add_argument("-o", "--output", type=Path, help="write the outputs to this .npz")
    p.add_argument("--threads", type=non_negative_int, default=None,
                   help="threads (default: those saved with the model; 0 is OpenMP's)")  # fmt: skip
    p.add_argument("--time", type=positive_int, metavar="N",
                   help="time N more runs and print their median and p10-p90 ms")  # fmt: skip
    _json_option(p)
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("info", help="ops, parameters and FLOPs of an ONNX model",
                       parents=[common])  # fmt: skip
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--shape", action="append", type=parse_shape, metavar="NAME=D1,D2,...")
    p.add_argument("--fusion", action="store_true",
                   help="the fusion plan: each kernel with the ops it computes, and why each "
                        "pair of kernels stays apart")  # fmt: skip
    _json_option(p)
    p.set_defaults(handler=cmd_info)

    p = sub.add_parser("profile", help="milliseconds per node of a model, slowest first",
                       parents=[common])  # fmt: skip
    p.add_argument("model", help="an .onnx file, or a directory written by `xgen compile`")
    p.add_argument("--shape", action="append", type=parse_shape, metavar="NAME=D1,D2,...")
    p.add_argument("--runs", type=positive_int, default=20, help="runs averaged (default 20)")
    p.add_argument("--top", type=positive_int, default=15,
                   help="slowest nodes listed (default 15)")  # fmt: skip
    p.add_argument("--threads", type=non_negative_int, default=None,
                   help="threads (default OpenMP's)")  # fmt: skip
    _winograd_option(p)
    _json_option(p)
    p.set_defaults(handler=cmd_profile)

    p = sub.add_parser("bench", help="latency of xgen vs onnxruntime, OpenVINO and PyTorch "
                       "on the model zoo (see xgen bench --help)", add_help=False)  # fmt: skip
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("compress", help="prune a PyTorch model's 3x3 convs to patterns + "
                       "connectivity, retrain on a data set, export to ONNX",
                       parents=[common])  # fmt: skip
    p.add_argument(
        "--model",
        required=True,
        metavar="MODULE:FACTORY",
        help="e.g. xgen.zoo.fmnist_vgg:FashionVGG (called with no arguments)",
    )
    p.add_argument("--checkpoint", type=Path, help="trained weights (a torch.save'd state_dict)")
    p.add_argument("--data", required=True, choices=["fashion-mnist"], help="training/test data")
    p.add_argument("--out", required=True, type=Path, help="the pruned .onnx to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--rate", type=float, default=0.75,
                   help="fraction of kernels removed in each 3x3 conv (default 0.75; the first "
                   "conv keeps all its kernels)")  # fmt: skip
    p.add_argument("--layer-rate", action="append", type=parse_layer_rate, metavar="NAME=RATE",
                   help="override one conv's rate, by module name (repeatable)")  # fmt: skip
    p.add_argument("--patterns", type=positive_int, default=8,
                   help="patterns in the library (default 8)")  # fmt: skip
    p.add_argument("--schedule", choices=["gradual", "admm"], default="gradual",
                   help="how pruning is reached before fine-tuning (default gradual)")  # fmt: skip
    p.add_argument("--epochs", type=non_negative_int, default=6,
                   help="pruning epochs (default 6)")  # fmt: skip
    p.add_argument("--finetune-epochs", type=non_negative_int, default=4,
                   help="fine-tune epochs (default 4)")  # fmt: skip
    p.add_argument("--batch-size", type=positive_int, default=128, help="default 128")
    p.add_argument("--lr", type=float, default=0.01, help="initial learning rate (default 0.01)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="torch device to train on (default cpu)")
    p.set_defaults(handler=cmd_compress)

    p = sub.add_parser("demo", help="classify two photos with EfficientNet-Lite0")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        with _logging(args.verbosity):
            return args.handler(args)
    except XgenError as e:
        return _error(str(e))
    except OSError as e:  # a path the user gave that cannot be read or written
        where = f"{e.filename}: " if e.filename else ""
        return _error(f"{where}{e.strerror or e}")
    except KeyboardInterrupt:
        return 130  # as a shell reports SIGINT, without a traceback


@contextlib.contextmanager
def _logging(verbosity: int) -> Iterator[None]:
    """One stderr handler on the "xgen" logger while a command runs: -q errors only, by default
    notes and warnings, -v every step (INFO). The logger is left as it was afterwards."""
    logger = logging.getLogger("xgen")
    saved = logger.level, logger.propagate
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("xgen: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel({-1: logging.ERROR, 0: NOTE, 1: logging.INFO}[verbosity])
    logger.propagate = False  # printed once, by this handler
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved


def _error(message: str) -> int:
    print(f"xgen: error: {message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
