"""Residual networks against PyTorch, in float64 to 1e-10 (runs where torch is importable).

The torch twins are written here as torchvision writes them (``BasicBlock`` with ``conv1``,
``bn1``, ``relu``, ``conv2``, ``bn2``, ``downsample``), so the keys are checked too: our state
dicts load into them strictly.
"""

import numpy as np
import pytest

from nnlayers import SGD, BCEWithLogitsLoss, Conv2D, Sequential, Tanh
from nnlayers.models import resnet
from nnlayers.nn.blocks import BasicBlock
from nnlayers.nn.branching import Concat, Identity, Residual
from nnlayers.optim.optimizer import no_decay_groups

torch = pytest.importorskip("torch", reason="PyTorch not installed: parity with torch not checked")
nn = torch.nn


class TorchBasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock, as it is written there."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


def torch_resnet(classes, widths, blocks, stem_stride):
    layers = [nn.Conv2d(3, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    previous = widths[0]
    for s, width in enumerate(widths):
        stage = [
            TorchBasicBlock(previous if b == 0 else width, width, 2 if s > 0 and b == 0 else 1) for b in range(blocks)
        ]
        layers.append(nn.Sequential(*stage))
        previous = width
    layers += [
        nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
        nn.Linear(previous, 1 if classes == 2 else classes),
    ]
    return nn.Sequential(*layers).double()


def nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def twin(ours, theirs):
    theirs.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()}, strict=True)
    return theirs


def check_block(ours, theirs, x):
    """Outputs, input gradients and parameter gradients of one block, in training mode."""
    xt = nchw(x).requires_grad_(True)
    y = ours(x)
    yt = theirs(xt)
    np.testing.assert_allclose(y, yt.detach().numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(9).normal(size=y.shape)
    grad_x = ours.backward(g)
    yt.backward(nchw(g))
    np.testing.assert_allclose(grad_x, xt.grad.numpy().transpose(0, 2, 3, 1), rtol=1e-10, atol=1e-12)
    for (name, p), (tname, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("stride, channels", [(1, 4), (2, 6), (1, 6)])
def test_basic_block_agrees_with_torchvision_s(stride, channels):
    ours = BasicBlock(4, channels, stride, rng=0, dtype=np.float64)
    theirs = twin(ours, TorchBasicBlock(4, channels, stride).double())
    check_block(ours, theirs, np.random.default_rng(0).normal(size=(3, 7, 7, 4)))


def test_residual_and_concat_agree_with_torch_forwards():
    class TorchResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 3, 3, 1, 1), nn.Tanh())
            self.shortcut = nn.Identity()

        def forward(self, x):
            return self.body(x) + self.shortcut(x)

    ours = Residual(Sequential([Conv2D(3, 3, 3, padding=1, rng=0, dtype=np.float64), Tanh()]))
    check_block(ours, twin(ours, TorchResidual().double()), np.random.default_rng(1).normal(size=(2, 5, 5, 3)))

    class TorchConcat(nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module("0", nn.Identity())
            self.add_module("1", nn.Conv2d(3, 2, 3, 1, 1))

        def forward(self, x):
            return torch.cat([branch(x) for branch in self.children()], dim=1)  # channels: dim 1 in NCHW

    ours = Concat(Identity(), Conv2D(3, 2, 3, padding=1, rng=0, dtype=np.float64))
    check_block(ours, twin(ours, TorchConcat().double()), np.random.default_rng(2).normal(size=(2, 4, 4, 3)))


def test_a_small_resnet_trains_twenty_steps_as_torch_does():
    ours = resnet(2, widths=(4, 8, 8), blocks=1, stem_stride=2, rng=0).to(np.float64)
    theirs = twin(ours, torch_resnet(2, (4, 8, 8), 1, 2))
    opt = SGD(no_decay_groups(ours), lr=0.05, momentum=0.9, weight_decay=5e-3)
    decay = [p for p in theirs.parameters() if p.ndim > 1]
    rest = [p for p in theirs.parameters() if p.ndim <= 1]
    topt = torch.optim.SGD([{"params": decay}, {"params": rest, "weight_decay": 0.0}], lr=0.05, momentum=0.9,
                           weight_decay=5e-3)  # fmt: skip
    loss_fn, rng = BCEWithLogitsLoss(), np.random.default_rng(3)
    for step in range(20):
        x = rng.random((6, 16, 16, 3))
        y = (rng.random((6, 1)) > 0.5).astype(np.float64)
        loss = loss_fn(ours(x), y)
        ours.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
        tloss = nn.functional.binary_cross_entropy_with_logits(theirs(nchw(x)), torch.from_numpy(y))
        topt.zero_grad()
        tloss.backward()
        topt.step()
        assert abs(loss - tloss.item()) < 1e-10, f"step {step}"
    theirs_state = theirs.state_dict()
    for key, value in ours.state_dict().items():  # weights, running statistics, batch counts
        np.testing.assert_allclose(value, theirs_state[key].numpy(), rtol=1e-10, atol=1e-12, err_msg=key)
    torch_resnet(2, (4, 8, 8), 1, 2).load_state_dict(
        {k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()}, strict=True
    )
