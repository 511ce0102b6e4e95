"""A frozen network run by ONNX Runtime on the CPU: the same outputs, faster.

`OnnxTrunk(network, method)` exports ``network.<method>`` (``extract_features``: ``x (B, 3, H, W)
-> (B, D, h, w)``, the default; ``forward``: a classifier's logits ``(B, C)``; any ``B``, ``H``,
``W``) to ONNX in memory with torch's TorchScript exporter and opens an ONNX Runtime session on
it; its ``run`` (and ``extract_features``) takes and returns torch tensors as the network's own
method does. The export is checked on a probe batch: the session's output must equal the
network's within `TOLERANCE` of its largest value, or `OnnxUnavailable` is raised, so a caller
never gets other vectors silently.

Why: the frozen EfficientNet-Lite2 descriptor (`utils.retrieval.descriptor.GlobalDescriptor`) is
most of notebook 08's time on real photos, and ONNX Runtime's CPU kernels (convolutions fused
with their batch norm and activation) run it 2.2x as fast as torch's eager ones on 2 cores of an
AMD EPYC without AVX512, descriptors equal within 1e-6 (`python -m utils bench gallery`,
docs/benchmarks.md). It needs the ``onnx`` (export) and ``onnxruntime`` packages.

`choose_engine(engine, device)` resolves ``auto``: ``onnx`` on a CPU device where both packages
import, else ``torch``. `EngineRunner` calls ``network.<method>`` by the chosen engine and builds
the ONNX session at its first call, once across threads; under ``auto`` a network ONNX cannot
run falls back to torch with a warning. The frozen descriptor (`utils.retrieval.descriptor`) and
the ImageNet detector (`utils.ood.imagenet`: 5.9x as fast, `bench gallery`) and ODIN's passes
without a gradient (`utils.ood.odin`) run through it. Training never does.
"""

from __future__ import annotations

import importlib.util
import io
import threading
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


class _Method(nn.Module):
    """``forward = network.<method>``: what the exporter traces."""

    def __init__(self, network: nn.Module, method: str):
        super().__init__()
        self.network, self.method = network, method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self.network, self.method)(x)


@contextmanager
def _eval_mode(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` in eval mode inside the block, in its own mode again after it."""
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


def export_trunk(network: nn.Module, method: str = "extract_features") -> bytes:
    """The ONNX model of ``network.<method>`` in eval mode, batch and size dynamic.

    The output's first axis is the batch; a 4-D output's last two are dynamic too. The
    network's own training mode is left as it was.
    """
    buffer = io.BytesIO()
    example = torch.zeros(1, 3, 64, 64)
    try:
        with _eval_mode(network), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding
            module = _Method(network, method).eval()  # inside: the block restores the mode
            rank = module(example).dim()
            output_axes = {0: "B", 2: "h", 3: "w"} if rank == 4 else {0: "B"}
            torch.onnx.export(
                module,
                (example,),
                buffer,
                input_names=["images"],
                output_names=["outputs"],
                dynamic_axes={"images": {0: "B", 2: "H", 3: "W"}, "outputs": output_axes},
                dynamo=False,
            )
    except Exception as err:  # the exporter raises many kinds; all mean the same here
        raise OnnxUnavailable(f"exporting {type(network).__name__} to ONNX failed: {err}") from err
    return buffer.getvalue()


class OnnxTrunk:
    """``network.<method>`` of a frozen network, run by ONNX Runtime (module docstring).

    ``threads``: ONNX Runtime's intra-op threads (0: torch's current count, so both use the
    cores the same way).
    """

    def __init__(self, network: nn.Module, threads: int = 0, method: str = "extract_features"):
        if not onnx_available():
            raise OnnxUnavailable("the onnx and onnxruntime packages are not installed")
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.method = method
        model = export_trunk(network, method)
        try:
            self.session = onnxruntime.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:
            raise OnnxUnavailable(f"ONNX Runtime cannot load the exported model: {err}") from err
        self.check(network)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` float CPU tensor -> the method's output, float32."""
        images = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"images": images})[0])

    def extract_features(self, x: torch.Tensor) -> torch.Tensor:
        """`run` under the trunk's name: ``(B, 3, H, W)`` -> ``(B, D, h, w)`` maps."""
        return self.run(x)

    def check(self, network: nn.Module) -> float:
        """Largest ``|onnx - torch|`` on a seeded probe batch, as a share of ``max |torch|``.

        Raises `OnnxUnavailable` above `TOLERANCE`. The network runs in eval mode for the
        comparison and is left in its own mode.
        """
        probe = torch.randn(*PROBE_SHAPE, generator=torch.Generator().manual_seed(0))
        with _eval_mode(network), torch.no_grad():
            expected = getattr(network, self.method)(probe).float()
        try:
            got = self.run(probe)
        except Exception as err:  # ONNX Runtime's own error kinds (e.g. an input traced away)
            raise OnnxUnavailable(f"ONNX Runtime cannot run the exported model: {err}") from err
        if got.shape != expected.shape:
            raise OnnxUnavailable(f"ONNX output {tuple(got.shape)}, torch {tuple(expected.shape)}")
        error = float((got - expected).abs().max() / expected.abs().max().clamp_min(1e-12))
        if not error <= TOLERANCE:
            raise OnnxUnavailable(
                f"ONNX output differs from torch by {error:.2g} of the largest value "
                f"(at most {TOLERANCE:g} allowed)"
            )
        return error


class EngineRunner:
    """``network.<method>(x)`` by the engine `choose_engine` picks (module docstring).

    ``what`` names the network in the fallback's warning. ``engine`` is the engine in use
    (``torch`` after a fallback), ``onnx`` the session once built.
    """

    def __init__(
        self,
        network: nn.Module,
        method: str = "extract_features",
        engine: str = "auto",
        device: str | torch.device = "cpu",
        what: str = "network",
    ):
        self.network, self.method, self.what = network, method, what
        self.requested, self.engine = engine, choose_engine(engine, device)
        self.onnx: OnnxTrunk | None = None
        self._building = threading.Lock()  # one export across threads

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``network.<method>(x)``, by ONNX Runtime once its session is built."""
        if self.engine == "onnx":
            with self._building:
                if self.onnx is None and self.engine == "onnx":
                    try:
                        self.onnx = OnnxTrunk(self.network, method=self.method)
                    except OnnxUnavailable as err:
                        if self.requested == "onnx":
                            raise
                        warnings.warn(f"{self.what}: {err}; running it in torch", stacklevel=2)
                        self.engine = "torch"
        if self.onnx is None:
            return getattr(self.network, self.method)(x)
        return self.onnx.run(x)
