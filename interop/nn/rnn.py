"""Recurrent layers: LSTM, GRU and their one-step cells, with PyTorch's parameter names, shapes and init.

Each layer calls one op over the whole sequence (`interop.ops.rnn`), so the whole recurrence is one node on the
tape and one ONNX `LSTM` / `GRU` node per layer in an export. PackedSequence inputs are not supported.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

from ..creation import empty
from ..ops import rnn as _rnn
from ..tensor import Tensor
from . import init
from .module import Module
from .parameter import Parameter

__all__ = ["RNNBase", "LSTM", "GRU", "RNNCellBase", "LSTMCell", "GRUCell"]

_GATES = {"LSTM": 4, "GRU": 3}


def _reset(module: Module, hidden_size: int) -> None:
    """PyTorch's RNN init: every weight and bias uniform in +-1/sqrt(hidden_size)."""
    stdv = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0
    for weight in module.parameters():
        init.uniform_(weight, -stdv, stdv)


class RNNBase(Module):
    """The parameters and checks nn.LSTM and nn.GRU share: per layer k and direction (suffix `_reverse`),
    weight_ih_l{k} (gates * hidden, in), weight_hh_l{k} (gates * hidden, hidden), bias_ih_l{k}, bias_hh_l{k}."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None):
        super().__init__()
        if not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError("dropout should be a number in range [0, 1] representing the probability of an "
                             "element being zeroed")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout option adds dropout after all but last recurrent layer, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} and num_layers={num_layers}",
                          stacklevel=3)
        if not isinstance(hidden_size, int) or isinstance(hidden_size, bool):
            raise TypeError(f"hidden_size should be of type int, got: {type(hidden_size).__name__}")
        if hidden_size <= 0:
            raise ValueError("hidden_size must be greater than zero")
        if num_layers <= 0:
            raise ValueError("num_layers must be greater than zero")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        if proj_size:
            raise NotImplementedError("LSTM with projections (proj_size > 0) is not supported by interop")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        gate_size = _GATES[mode] * hidden_size
        dirs = 2 if bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(num_layers):
            for direction in range(dirs):
                fan_in = input_size if layer == 0 else hidden_size * dirs
                suffix = "_reverse" if direction == 1 else ""
                shapes = {"weight_ih": (gate_size, fan_in), "weight_hh": (gate_size, hidden_size)}
                if bias:
                    shapes.update(bias_ih=(gate_size,), bias_hh=(gate_size,))
                names = []
                for kind, shape in shapes.items():
                    name = f"{kind}_l{layer}{suffix}"
                    setattr(self, name, Parameter(empty(*shape, device=device, dtype=dtype)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        self.reset_parameters()

    @property
    def _flat_weights(self) -> list[Tensor]:
        """The parameters in the op's flat order, looked up by name (load_state_dict and .to() replace them)."""
        return [getattr(self, n) for n in self._flat_weights_names]

    @property
    def all_weights(self) -> list[list[Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """Packs cuDNN's weight buffer in PyTorch; here the weights are always used as they are."""

    def reset_parameters(self) -> None:
        _reset(self, self.hidden_size)

    def _batched(self, input: Tensor, hx: Any) -> tuple[Tensor, tuple[Tensor, ...] | None, bool]:
        """PyTorch's input checks; an unbatched (seq, in) input becomes a batch of one."""
        if input.ndim not in (2, 3):
            raise ValueError(f"{self.mode}: Expected input to be 2D or 3D, got {input.ndim}D instead")
        if input.data.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {self.input_size}, got "
                               f"{input.data.shape[-1]}")
        batched = input.ndim == 3
        if self.mode == "LSTM" and hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError("LSTM: hx must be a tuple (h_0, c_0) of tensors")
        states = None if hx is None else (tuple(hx) if self.mode == "LSTM" else (hx,))
        if states is not None:
            want = 3 if batched else 2
            if any(s.ndim != want for s in states):
                kind = "batched 3-D" if batched else "unbatched 2-D"
                got = ", ".join(f"{s.ndim}-D" for s in states)
                which = "hx and cx" if self.mode == "LSTM" else "hx"
                tail = f"({got}) tensors" if self.mode == "LSTM" else f"{got} tensor"
                raise RuntimeError(f"For {kind} input, {which} should also be {want}-D but got {tail}")
            if not batched:
                states = tuple(s.unsqueeze(1) for s in states)
        if not batched:
            input = input.unsqueeze(0 if self.batch_first else 1)
        return input, states, batched

    def _unbatch(self, output: Tensor, states: tuple, batched: bool) -> tuple:
        if batched:
            return output, states
        return output.squeeze(0 if self.batch_first else 1), tuple(s.squeeze(1) for s in states)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


class LSTM(RNNBase):
    """Multi-layer LSTM: `forward(input, (h0, c0)=None) -> (output, (h_n, c_n))`, PyTorch's gates i, f, g, o."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device: Any = None, dtype: Any = None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        input, states, batched = self._batched(input, hx)
        output, h, c = _rnn.lstm(input, states, self._flat_weights, self.bias, self.num_layers, self.dropout,
                                 self.training, self.bidirectional, self.batch_first)
        output, (h, c) = self._unbatch(output, (h, c), batched)
        return output, (h, c)


class GRU(RNNBase):
    """Multi-layer GRU: `forward(input, h0=None) -> (output, h_n)`, PyTorch's gates r, z, n (b_hn inside r)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device: Any = None,
                 dtype: Any = None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> tuple[Tensor, Tensor]:
        input, states, batched = self._batched(input, hx)
        output, h = _rnn.gru(input, None if states is None else states[0], self._flat_weights, self.bias,
                             self.num_layers, self.dropout, self.training, self.bidirectional, self.batch_first)
        output, (h,) = self._unbatch(output, (h,), batched)
        return output, h


class RNNCellBase(Module):
    """weight_ih (gates * hidden, in), weight_hh (gates * hidden, hidden), bias_ih, bias_hh, as PyTorch's."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int, device: Any = None,
                 dtype: Any = None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = Parameter(empty(num_chunks * hidden_size, input_size, device=device, dtype=dtype))
        self.weight_hh = Parameter(empty(num_chunks * hidden_size, hidden_size, device=device, dtype=dtype))
        if bias:
            self.bias_ih = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
            self.bias_hh = Parameter(empty(num_chunks * hidden_size, device=device, dtype=dtype))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _reset(self, self.hidden_size)

    def _batched(self, input: Tensor, states: tuple | None, name: str) -> tuple[Tensor, tuple | None, bool]:
        if input.ndim not in (1, 2):
            raise ValueError(f"{name}: Expected input to be 1D or 2D, got {input.ndim}D instead")
        if states is not None:
            for k, s in enumerate(states):
                if s.ndim not in (1, 2):
                    which = f"hx[{k}]" if len(states) > 1 else "hidden"
                    raise ValueError(f"{name}: Expected {which} to be 1D or 2D, got {s.ndim}D instead")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
            states = None if states is None else tuple(s.unsqueeze(0) for s in states)
        return input, states, batched

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias is True else f", bias={self.bias}")


class LSTMCell(RNNCellBase):
    """One LSTM step: `forward(input, (h, c)=None) -> (h', c')`."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        input, states, batched = self._batched(input, None if hx is None else tuple(hx), "LSTMCell")
        h, c = _rnn.lstm_cell(input, states, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step: `forward(input, h=None) -> h'`."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input: Tensor, hx: Tensor | None = None) -> Tensor:
        input, states, batched = self._batched(input, None if hx is None else (hx,), "GRUCell")
        h = _rnn.gru_cell(input, None if states is None else states[0], self.weight_ih, self.weight_hh,
                          self.bias_ih, self.bias_hh)
        return h if batched else h.squeeze(0)
