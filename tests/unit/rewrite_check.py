"""The check the rewriting-pass tests share: a pass applied to a copy of a hand-built graph must
leave it valid and computing what it computed (numpy reference before and after, and the graph
compiled with every pass)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np

import xgen
from xgen import reference
from xgen.ir import Graph
from xgen.ir.verify import verify

RNG = np.random.default_rng(7)


def checked_rewrite(g: Graph, run_pass: Callable[[Graph], None], tol: float = 1e-5) -> Graph:
    """run_pass applied to a copy of g, checked as above; returns the copy."""
    after = copy.deepcopy(g)
    run_pass(after)
    verify(after, after=run_pass.__name__)
    feeds = {v.name: RNG.uniform(-1, 1, v.shape).astype(np.float32) for v in g.inputs}
    want = reference.run(g, feeds)
    for got in (reference.run(after, feeds), xgen.compile(copy.deepcopy(g)).run(feeds)):
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value, rtol=tol, atol=tol, err_msg=name)
    return after
