"""A frozen network's convolutional trunk run by ONNX Runtime on the CPU: the same maps, faster.

`OnnxTrunk(network)` exports ``network.extract_features`` (``x (B, 3, H, W) -> (B, D, h, w)``,
any ``B``, ``H``, ``W``) to ONNX in memory with torch's TorchScript exporter and opens an ONNX
Runtime session on it; its ``extract_features`` takes and returns torch tensors as the network's
own does. The export is checked on a probe batch: the session's maps must equal the network's
within `TOLERANCE` of the largest activation, or `OnnxUnavailable` is raised, so a caller never
gets other vectors silently.

Why: the frozen EfficientNet-Lite2 descriptor (`utils.retrieval.descriptor.GlobalDescriptor`) is
most of notebook 08's time on real photos, and ONNX Runtime's CPU kernels (convolutions fused
with their batch norm and activation) run it 2.2x as fast as torch's eager ones on 2 cores of an
AMD EPYC without AVX512, descriptors equal within 1e-6 (`python -m utils bench gallery`,
docs/benchmarks.md). It needs the ``onnx`` (export) and ``onnxruntime`` packages.

`choose_engine(engine, device)` resolves ``auto``: ``onnx`` on a CPU device where both packages
import, else ``torch``. Training never goes through here.
"""

from __future__ import annotations

import importlib.util
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

ENGINES = ("auto", "torch", "onnx")
TOLERANCE = 1e-3  # largest |onnx - torch| allowed on the probe, as a share of max |torch|
PROBE_SHAPE = (2, 3, 72, 56)  # batch, channels, height, width: not square, not the export's


class OnnxUnavailable(RuntimeError):
    """The trunk cannot run in ONNX Runtime here (packages missing, export or check failed)."""


def onnx_available() -> bool:
    """Whether the ``onnx`` and ``onnxruntime`` packages can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def choose_engine(engine: str, device: str | torch.device) -> str:
    """``torch`` or ``onnx`` for ``engine`` in `ENGINES` on ``device`` (module docstring)."""
    if engine not in ENGINES:
        raise ValueError(f"engine: one of {', '.join(ENGINES)}, not {engine!r}")
    on_cpu = torch.device(device).type == "cpu"
    if engine == "onnx" and not on_cpu:
        raise ValueError(f"the onnx engine runs on the CPU, not on {device}")
    if engine == "auto":
        return "onnx" if on_cpu and onnx_available() else "torch"
    return engine


class _Trunk(nn.Module):
    """``forward = network.extract_features``: what the exporter traces."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.extract_features(x)


@contextmanager
def _eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` in eval mode inside the block, in its own mode again after it."""
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


def export_trunk(network: nn.Module) -> bytes:
    """The ONNX model of ``network.extract_features`` in eval mode, batch and size dynamic.

    The network's own training mode is left as it was.
    """
    buffer = io.BytesIO()
    try:
        with _eval_mode(network), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding
            torch.onnx.export(
                _Trunk(network).eval(),
                (torch.zeros(1, 3, 64, 64),),
                buffer,
                input_names=["images"],
                output_names=["maps"],
                dynamic_axes={"images": {0: "B", 2: "H", 3: "W"}, "maps": {0: "B", 2: "h", 3: "w"}},
                dynamo=False,
            )
    except Exception as err:  # the exporter raises many kinds; all mean the same here
        raise OnnxUnavailable(f"exporting {type(network).__name__} to ONNX failed: {err}") from err
    return buffer.getvalue()


class OnnxTrunk:
    """``extract_features`` of a frozen network, run by ONNX Runtime (module docstring).

    ``threads``: ONNX Runtime's intra-op threads (0: torch's current count, so both use the
    cores the same way).
    """

    def __init__(self, network: nn.Module, threads: int = 0):
        if not onnx_available():
            raise OnnxUnavailable("the onnx and onnxruntime packages are not installed")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        model = export_trunk(network)
        try:
            self.session = onnxruntime.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:
            raise OnnxUnavailable(f"ONNX Runtime cannot load the exported trunk: {err}") from err
        self.check(network)

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float CPU tensor -> ``(B, D, h, w)`` float32 maps."""
        images = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"images": images})[0])

    def check(self, network: nn.Module) -> float:
        """Largest ``|onnx - torch|`` on a seeded probe batch, as a share of ``max |torch|``.

        Raises `OnnxUnavailable` above `TOLERANCE`. The network runs in eval mode for the
        comparison and is left in its own mode.
        """
        probe = torch.randn(*PROBE_SHAPE, generator=torch.Generator().manual_seed(0))
        with _eval_mode(network), torch.no_grad():
            expected = network.extract_features(probe).float()
        got = self.extract_features(probe)
        if got.shape != expected.shape:
            raise OnnxUnavailable(f"ONNX maps {tuple(got.shape)}, torch {tuple(expected.shape)}")
        error = float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))
        if not error <= TOLERANCE:
            raise OnnxUnavailable(
                f"ONNX maps differ from torch by {error:.2g} of the largest activation "
                f"(at most {TOLERANCE:g} allowed)"
            )
        return error
