"""The reference: a hand-written backpropagation in numpy (the system under test)."""

from reference.activations import ACTIVATIONS, Activation, get_activation
from reference.backprop import Trace, backward, forward, loss, loss_and_grads
from reference.losses import LOSSES, Loss, get_loss
from reference.network import Layer, Network, Params, SpecError, build, init_params, layer_name

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "Activation",
    "Layer",
    "Loss",
    "Network",
    "Params",
    "SpecError",
    "Trace",
    "backward",
    "build",
    "forward",
    "get_activation",
    "get_loss",
    "init_params",
    "layer_name",
    "loss",
    "loss_and_grads",
]
