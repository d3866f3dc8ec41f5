"""The network and reports the report and HTML tests share (their fixtures live in conftest.py)."""

import numpy as np

from reference import Layer, Network, init_params
from verifier.check import verify_network
from verifier.report import Report
from verifier.strategies import make_batch

# a skip edge from unit 1 to layer 3: Delta(h^1) sums over two paths
NET = Network(3, (Layer(4, "tanh"), Layer(4, "sigmoid", (1,)), Layer(2, "identity", (1, 2))), "mse")


def verify_sample(backward=None) -> Report:
    params = init_params(NET, seed=0)
    x, y = make_batch(NET, 3, 0, np.dtype(np.float64))
    return verify_network(NET, params, x, y, **({} if backward is None else {"backward": backward}))
