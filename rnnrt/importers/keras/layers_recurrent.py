"""Emitters of the Keras recurrent layers: SimpleRNN, LSTM, GRU, RNN(cell) and
Bidirectional, with their masks, initial states and merge modes."""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import FormatError, UnsupportedModelError
from .catalog import _GATES, _IR_CELL, _activation, _bidirectional_layers, _recurrent_config
from .config import _class
from .tensor import _Tensor


class RecurrentLayers:
    def _cell(self, layer, weights, where):
        """IR parameters of one direction: W, R, Wb, Rb (each without the D axis), the
        activations and linear_before_reset."""
        cls, cfg = _recurrent_config(layer)
        H, G = int(cfg["units"]), _GATES[cls]
        kernel, recurrent = weights[0], weights[1]
        bias = weights[2] if len(weights) > 2 else None
        W, R = kernel.T, recurrent.T                        # (G*H, I), (G*H, H)
        Wb, Rb = np.zeros(G * H, np.float32), np.zeros(G * H, np.float32)
        lbr = False
        if cls == "LSTM":
            # Keras columns i, f, c, o -> IR rows i, o, f, c.
            order = [0, 3, 1, 2]
            W = np.concatenate([W[k * H:(k + 1) * H] for k in order])
            R = np.concatenate([R[k * H:(k + 1) * H] for k in order])
            if bias is not None:
                Wb = np.concatenate([bias[k * H:(k + 1) * H] for k in order])
        elif cls == "GRU":
            lbr = bool(cfg.get("reset_after", True))
            if bias is not None:
                if lbr:
                    Wb, Rb = bias[0], bias[1]
                else:
                    Wb = bias
        elif bias is not None:
            Wb = bias
        act = _activation(cfg.get("activation", "tanh"), where)
        if act.name in ir.ROW_WISE:
            raise UnsupportedModelError(f"{where}: {act.name} cannot be a cell activation")
        if cls == "SimpleRNN":
            acts = [act]
        else:
            ract = _activation(cfg.get("recurrent_activation", "sigmoid"), where)
            if ract.name in ir.ROW_WISE:
                raise UnsupportedModelError(f"{where}: {ract.name} cannot be a cell activation")
            acts = [ract, act] + ([act] if cls == "LSTM" else [])
        return W, R, Wb, Rb, acts, lbr

    @staticmethod
    def _expected(layer, I):
        cls, cfg = _recurrent_config(layer)
        H, G = int(cfg["units"]), _GATES[cls]
        exp = [("kernel", (I, G * H)), ("recurrent_kernel", (H, G * H))]
        if cfg.get("use_bias", True):
            if cls == "GRU" and cfg.get("reset_after", True):
                exp.append(("bias", (2, G * H)))
            else:
                exp.append(("bias", (G * H,)))
        return exp

    def _sequence_input(self, call, x):
        if len(x.shape) != 3 or x.shape[-1] is None:
            raise UnsupportedModelError(
                f"{_class(call.layer)} layer {call.name!r} needs a (batch, time, features) "
                f"input with known features, got shape {x.shape}")
        return x.shape[-1]

    def layer_recurrent(self, call, x, initial_state=()):
        cls, cfg = _recurrent_config(call.layer)
        where = f"{_class(call.layer)} layer {call.name!r}"
        I, H = self._sequence_input(call, x), int(cfg["units"])
        self._flags(call, cfg)
        W, R, Wb, Rb, acts, lbr = self._cell(
            call.layer, self.weights(call, self._expected(call.layer, I)), where)
        backwards = bool(cfg.get("go_backwards", False))
        seqs, state = bool(cfg.get("return_sequences", False)), bool(cfg.get("return_state"))
        zero_out = bool(cfg.get("zero_output_for_mask", False))
        rec = ir.Recurrent(
            name=self.layer_name(call), cell=_IR_CELL[cls],
            direction="reverse" if backwards else "forward", hidden_size=H, input_size=I,
            x=x.name, W=W[None], R=R[None], Wb=Wb[None], Rb=Rb[None], activations=[acts],
            linear_before_reset=lbr, output_order="step" if backwards else "time",
            masked_output="zero" if zero_out else "carry", mask=x.mask)
        if initial_state:
            self._initial_state(call, rec, cls, initial_state, seqs)
        self.add(rec)
        if seqs:
            rec.y = self.out_name(call)
            outs = [_Tensor(rec.y, (None, x.shape[1], H), x.mask)]
        elif zero_out and x.mask is not None:
            # Keras returns the output of the last processed step, zero if it is masked.
            rec.y = self.out_name(call, "/y")
            out = self.out_name(call)
            self.add(ir.TimeStep(name=self.layer_name(call, "/last"), x=rec.y, out=out,
                                 index=-1))
            outs = [_Tensor(out, (None, H), None)]
        else:
            # The output of the last processed step is the final state (carried over
            # masked steps, and zero-initialised).
            rec.h_last = self.out_name(call)
            outs = [_Tensor(rec.h_last, (None, H), None)]
        if state:
            if rec.h_last is None:
                rec.h_last = self.out_name(call, "/h")
            outs.append(_Tensor(rec.h_last, (None, H), None))
            if cls == "LSTM":
                rec.c_last = self.out_name(call, "/c")
                outs.append(_Tensor(rec.c_last, (None, H), None))
        return outs

    def _initial_state(self, call, rec, cls, states, seqs):
        """Wire Keras's initial_state list ([h, c] for LSTM, [h] otherwise; each (batch, H))
        as the layer's flat "bdh" h0 / c0."""
        where = f"{_class(call.layer)} layer {call.name!r}"
        names = ["h", "c"] if cls == "LSTM" else ["h"]
        if len(states) != len(names):
            raise FormatError(
                f"{where}: initial_state has {len(states)} tensor(s); {cls} takes "
                f"{len(names)}: [{', '.join(names)}]")
        for label, t in zip(names, states):
            if len(t.shape) != 2 or t.shape[-1] != rec.hidden_size or t.dtype != "float32":
                raise FormatError(
                    f"{where}: initial state {label} {t.name!r} has shape {t.shape} "
                    f"({t.dtype}); expected (batch, {rec.hidden_size}) float32")
        if rec.mask is not None and rec.masked_output == "carry":
            # Keras's carried output starts from zero, not from the initial state: it is
            # zero at masked steps before the first unmasked one, where the IR carries h0.
            if seqs:
                raise UnsupportedModelError(
                    f"{where}: mask= with initial_state and return_sequences=True is "
                    "supported only with zero_output_for_mask=True (Keras outputs zeros, not "
                    "the initial state, at masked steps before the first unmasked one)")
            self.notes.append(
                f"layer {call.name!r}: for a row whose steps are all masked, Keras outputs "
                "zeros and rnnrt the initial state (the returned states agree)")
        rec.state_layout = "bdh"
        rec.h0 = states[0].name
        if cls == "LSTM":
            rec.c0 = states[1].name

    def _flags(self, call, cfg):
        if cfg.get("stateful"):
            self.notes.append(f"layer {call.name!r} is stateful in Keras; rnnrt starts every "
                              "run() from zero state (use Model.stream() to carry state)")

    def layer_Bidirectional(self, call, x, initial_state=()):
        cfg = call.layer.get("config", {})
        where = f"Bidirectional layer {call.name!r}"
        if initial_state:
            # Keras gives the first half of the list to the forward layer, the second to the
            # backward one; the IR's flat h0 of a bidirectional layer is one (B, 2H) tensor,
            # and there is no IR layer to concatenate two (B, H) states into it.
            raise UnsupportedModelError(
                f"{where}: initial_state on a Bidirectional layer is not supported; give the "
                "initial state to single-direction layers (SimpleRNN, LSTM, GRU, RNN)")
        fwd, bwd = _bidirectional_layers(call.layer)
        (fcls, fcfg), (bcls, bcfg) = _recurrent_config(fwd), _recurrent_config(bwd)
        if fcfg.get("go_backwards") or not bcfg.get("go_backwards"):
            raise UnsupportedModelError(
                f"{where}: only a forward layer with a go_backwards backward layer is supported")
        if fcls != bcls or fcfg["units"] != bcfg["units"] or (
                fcls == "GRU" and fcfg.get("reset_after", True) != bcfg.get("reset_after", True)):
            raise UnsupportedModelError(
                f"{where}: forward and backward layers differ in type, units or reset_after")
        merge = cfg.get("merge_mode", "concat")
        if merge not in ir.MERGE_MODES + (None,):
            raise UnsupportedModelError(f"{where}: merge_mode {merge!r} is not supported")
        I, H = self._sequence_input(call, x), int(fcfg["units"])
        self._flags(call, fcfg)
        fexp, bexp = self._expected(fwd, I), self._expected(bwd, I)
        w = self.weights(call, [("forward " + l, s) for l, s in fexp]
                         + [("backward " + l, s) for l, s in bexp])
        fp = self._cell(fwd, w[:len(fexp)], where)
        bp = self._cell(bwd, w[len(fexp):], where)
        seqs, state = bool(fcfg.get("return_sequences")), bool(fcfg.get("return_state"))
        rec = ir.Recurrent(
            name=self.layer_name(call), cell=_IR_CELL[fcls], direction="bidirectional",
            hidden_size=H, input_size=I, x=x.name,
            W=np.stack([fp[0], bp[0]]), R=np.stack([fp[1], bp[1]]),
            Wb=np.stack([fp[2], bp[2]]), Rb=np.stack([fp[3], bp[3]]),
            activations=[fp[4], bp[4]], linear_before_reset=fp[5],
            # Bidirectional sets zero_output_for_mask = return_sequences on both layers,
            # and flips the backward outputs back into time order.
            masked_output="zero" if seqs else "carry", mask=x.mask)
        self.add(rec)
        # Both directions side by side: y (B, T, 2H) or, sequence-to-vector, the final
        # states h_last (B, 2H), which are the outputs of the last processed steps.
        shape, mask = ((None, x.shape[1]), x.mask) if seqs else ((None,), None)
        both = self.out_name(call) if merge == "concat" else self.out_name(call, "/both")
        if seqs:
            rec.y = both
        else:
            rec.h_last = both
        if merge == "concat":
            outs = [_Tensor(both, shape + (2 * H,), mask)]
        elif merge is None:
            outs = [self._slice(call, both, 0, H, shape, mask, "/forward"),
                    self._slice(call, both, H, 2 * H, shape, mask, "/backward")]
        else:
            out = self.out_name(call)
            self.add(ir.MergeDirections(name=self.layer_name(call, "/merge"), x=both,
                                        out=out, mode=merge))
            outs = [_Tensor(out, shape + (H,), mask)]
        if state:
            if rec.h_last is None:
                rec.h_last = self.out_name(call, "/h")
            if fcls == "LSTM":
                rec.c_last = self.out_name(call, "/c")
            for d, (start, stop) in enumerate(((0, H), (H, 2 * H))):
                side = ("/forward", "/backward")[d]
                outs.append(self._slice(call, rec.h_last, start, stop, (None,), None,
                                        side + "_h"))
                if rec.c_last:
                    outs.append(self._slice(call, rec.c_last, start, stop, (None,), None,
                                            side + "_c"))
        return outs

    def _slice(self, call, src, start, stop, shape, mask, suffix):
        out = self.out_name(call, suffix)
        self.add(ir.FeatureSlice(name=self.layer_name(call, suffix), x=src, out=out,
                                 start=start, stop=stop))
        return _Tensor(out, shape + (stop - start,), mask)
