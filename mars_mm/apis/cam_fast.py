"""CAM inference on CPU through oneDNN: a frozen TorchScript graph of ``model.cam``.

:func:`mars_mm.apis.cam.cam_function` folds BatchNorm and uses channels-last
tensors (1.17x over the naive multi-scale loop on a ResNet-50 CPU run). Tracing the
folded ``cam`` once and passing it through ``torch.jit.optimize_for_inference``
also lets oneDNN fuse convolution + ReLU and keep its own weight layout between
calls, which removes most of the remaining per-layer overhead on CPU
(``benchmarks/cam_inference.py``: path ``frozen``, equal to the naive loop within
1e-5). The trace is taken from the first batch; a convolutional CAM model has no
shape-dependent Python code, so the same graph serves every scale (the benchmark
compares all four scales + flip with the eager model). On CUDA the eager function
is returned unchanged (cuDNN already fuses what matters there).
"""
import copy
from typing import Callable, Optional

import torch
from torch import Tensor, nn


class _CAMForward(nn.Module):
    """``model.cam`` as ``forward`` (what ``torch.jit.trace`` records)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model.cam(inputs)


class FrozenCAMFunction:
    """A CAM function that traces and freezes ``model.cam`` on its first CPU call.

    Args:
        model: a model with ``cam(inputs) -> (N, C, h, w)``, in eval mode; it is
            copied (BatchNorm folded into the convolutions), never changed.
        fuse_bn: fold BatchNorm first (mmcv's ``fuse_conv_bn``).
    """

    def __init__(self, model: nn.Module, fuse_bn: bool = True) -> None:
        model = copy.deepcopy(model).eval()
        if fuse_bn:
            from mmcv.cnn import fuse_conv_bn
            model = fuse_conv_bn(model)
        self.model = model
        self._frozen: Optional[torch.jit.ScriptModule] = None

    def __call__(self, inputs: Tensor) -> Tensor:
        if inputs.device.type != 'cpu':
            return self.model.cam(inputs)
        if self._frozen is None:
            with torch.no_grad():
                traced = torch.jit.trace(_CAMForward(self.model), inputs,
                                         check_trace=False)
                self._frozen = torch.jit.optimize_for_inference(traced)
        return self._frozen(inputs)


def frozen_cam_function(model: nn.Module,
                        fuse_bn: bool = True) -> Callable[[Tensor], Tensor]:
    """See :class:`FrozenCAMFunction`."""
    return FrozenCAMFunction(model, fuse_bn)
