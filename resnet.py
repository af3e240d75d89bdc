"""The study's 1D ResNet for 12-lead ECG classification.

Zhang D, Yang S, Yuan X, Zhang P. Interpretable deep learning for automatic
diagnosis of 12-lead electrocardiogram. iScience 24(4):102373, 2021
(code: github.com/onlyzdd/ecg-diagnosis, resnet.py).

Architecture (ResNet-34 by default, 16,610,185 parameters with 12 leads):
stem Conv1d(k=15, stride 2) -> BN -> ReLU -> MaxPool(3, stride 2); four stages
of basic blocks with kernel-7 convolutions (64, 128, 256, 512 channels; 3, 4,
6, 3 blocks); the head concatenates global average and max pooling (1024
features) and applies one Linear layer to the 9 class logits. The pooling is
written as mean/amax (the study: AdaptiveAvg/MaxPool1d(1), the same values),
which have deterministic CUDA kernels, and with mask_padding pools over the
record only (--length-aware).

Parameter names are the study's (conv1, bn1, layer1..4, downsample.0/1, fc), so
its saved weights load with strict=True. Unlike the study's code there are no
in-place operations and every ReLU is its own module, so gradient explainers
(SHAP GradientExplainer, captum) can hook each use separately. On the CPU the
block dropout draws its masks four at a time (Dropout below: same keep rate,
~10% faster bf16 training steps on 2 cores).

    from resnet import build_model
    model = build_model('resnet34', num_leads=12)

A checkpoint of main.py is loaded by runs.py (runs.load_run, runs.load_checkpoint).
"""
import math

import torch
from torch import nn

from utils import CLASSES, autocast

ARCHS = {'resnet18': [2, 2, 2, 2], 'resnet34': [3, 4, 6, 3]}


def _uniform16(shape):
    """Uniform int16 values (as signed, covering [-2**15, 2**15)) from torch's
    default CPU generator, four per 64-bit draw."""
    n = math.prod(shape)
    words = torch.empty(-(-n // 4), dtype=torch.int64).random_(-2 ** 63, None)
    return words.view(torch.int16)[:n].view(shape)


class Dropout(nn.Dropout):
    """nn.Dropout with a faster mask on the CPU (the same module on CUDA).

    On the CPU, torch's bernoulli_ draws one random number per element,
    serially: for ResNet-34's 16 block dropouts it takes about a tenth of a
    bf16 training step on 2 cores (`python bench.py --only train`, row (a)).
    Here each 64-bit draw of the same generator gives four 16-bit uniforms;
    an element is kept when its uniform falls below round((1 - p) * 2**16)
    (for p = 0.2: 52429 / 65536 = 0.800003 instead of 0.8) and scaled by the
    inverse of that exact keep probability, so the expected output is the
    input, as with nn.Dropout. Seeded and resumable like any torch RNG use;
    the masks differ from nn.Dropout's, so the same seed trains other
    weights than the stock module would. `fast = False` gives the stock
    module (bench.py's study step).
    """
    fast = True

    def forward(self, x):
        keep = round((1 - self.p) * 2 ** 16)
        # p within 2**-17 of 0 or 1 is beyond a 16-bit threshold: stock module
        if not (self.training and self.fast and 0 < keep < 2 ** 16 and x.device.type == 'cpu'):
            return super().forward(x)
        mask = (_uniform16(x.shape) < keep - 2 ** 15).to(x.dtype)
        return x * mask.mul_(2 ** 16 / keep)


def use_fast_dropout(model, on=True):
    """Switch every resnet.Dropout in `model` between the fast CPU mask and
    the stock nn.Dropout (bench.py measures one against the other)."""
    for m in model.modules():
        if isinstance(m, Dropout):
            m.fast = on
    return model


class BasicBlock1d(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, dropout=0.2):
        super().__init__()
        self.conv1 = nn.Conv1d(inplanes, planes, kernel_size=7, stride=stride,
                               padding=3, bias=False)
        self.bn1 = nn.BatchNorm1d(planes)
        self.relu1 = nn.ReLU()
        self.dropout = Dropout(dropout)
        self.conv2 = nn.Conv1d(planes, planes, kernel_size=7, stride=1,
                               padding=3, bias=False)
        self.bn2 = nn.BatchNorm1d(planes)
        self.downsample = downsample
        self.relu2 = nn.ReLU()

    def forward(self, x, pad=None):
        """pad (batch,) samples of front padding at this block's input
        resolution, or None: with it, the padded positions are zeroed after
        every layer, so each convolution sees the zeros its own padding would
        give, however much padding the record came with."""
        out = self.dropout(self.relu1(self.bn1(self.conv1(x))))
        stride = self.conv1.stride[0]
        if pad is not None:
            pad = pad // stride
            out = out * front_mask(pad, out)
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu2(out + residual)
        return out if pad is None else out * front_mask(pad, out)


class ResNet1d(nn.Module):
    """layers: blocks per stage, e.g. [3, 4, 6, 3] for ResNet-34.

    head_dropout: the study defines Dropout(0.2) for the head but never calls
    it in forward(), so its results were obtained without it; 0.0 (default)
    reproduces that, 0.2 is what its code appears to intend.

    mask_padding (main.py --length-aware): the head pools only over the
    record, not over the zeros padded in front of it. After batch norm those
    zeros are not zero, so without the mask a record's output depends on how
    much padding it came with: a length-aware model trained on batches
    padded to their longest record would be scored on the full window with
    far more padding. With the mask, training batches, the full-window
    validation and test, predict.py and SHAP all pool over the same
    positions. It adds no parameters: the study's state dict loads strictly
    either way, and the default (off) pools as the study did.
    """

    def __init__(self, layers, input_channels=12, num_classes=9, inplanes=64,
                 block_dropout=0.2, head_dropout=0.0, mask_padding=False):
        super().__init__()
        self.mask_padding = mask_padding
        self.inplanes = inplanes
        self.conv1 = nn.Conv1d(input_channels, inplanes, kernel_size=15, stride=2,
                               padding=7, bias=False)
        self.bn1 = nn.BatchNorm1d(inplanes)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool1d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(64, layers[0], 1, block_dropout)
        self.layer2 = self._make_layer(128, layers[1], 2, block_dropout)
        self.layer3 = self._make_layer(256, layers[2], 2, block_dropout)
        self.layer4 = self._make_layer(512, layers[3], 2, block_dropout)
        self.dropout = Dropout(head_dropout)
        self.fc = nn.Linear(512 * BasicBlock1d.expansion * 2, num_classes)

    def _make_layer(self, planes, blocks, stride, dropout):
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock1d.expansion:
            downsample = nn.Sequential(
                nn.Conv1d(self.inplanes, planes * BasicBlock1d.expansion,
                          kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm1d(planes * BasicBlock1d.expansion),
            )
        layers = [BasicBlock1d(self.inplanes, planes, stride, downsample, dropout)]
        self.inplanes = planes * BasicBlock1d.expansion
        layers += [BasicBlock1d(self.inplanes, planes, dropout=dropout)
                   for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def head(self, x):
        """(batch, 512, T) features -> logits: average and max over time."""
        # = AdaptiveAvgPool1d(1) / AdaptiveMaxPool1d(1) of the study, whose
        # CUDA backward has no deterministic kernel (--deterministic).
        return self.fc(self.dropout(torch.cat((x.mean(-1), x.amax(-1)), dim=1)))

    def features(self, x):
        """(batch, leads, samples) -> (batch, 512, samples / 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def masked_features(self, x, pad):
        """features() with the front padding zeroed after every layer.
        x's width is a multiple of 32 (forward pads it), so every stage's
        grid lines up with the record's samples whatever the padding."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = x * front_mask(pad // 2, x)
        x = self.maxpool(x)  # ReLU outputs >= 0: the zeros never win a max
        pad = pad // 4
        x = x * front_mask(pad, x)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            for block in stage:
                x = block(x, pad)
                pad = pad // block.conv1.stride[0]
        return x, pad

    def forward(self, x):
        if not self.mask_padding:
            return self.head(self.features(x))
        # Front-pad to a multiple of the total stride (32): a record then lies
        # on the same grid in a training batch (padded to a multiple of 64)
        # and in the full window, so both give the same output.
        x = nn.functional.pad(x, (-x.shape[-1] % 32, 0))
        x, pad = self.masked_features(x, padding_length(x))
        keep = front_mask(torch.clamp(pad, max=x.shape[-1] - 1), x).bool()
        avg = (x * keep).sum(-1) / keep.sum(-1)
        mx = torch.where(keep, x, torch.full((), float('-inf'), dtype=x.dtype,
                                             device=x.device)).amax(-1)
        return self.fc(self.dropout(torch.cat((avg, mx), dim=1)))


def padding_length(x):
    """(batch, leads, samples) -> (batch,) samples of front zero padding:
    the leading samples that are exactly zero in every lead (the dataset pads
    with exact zeros; augmentation touches only the record itself). A record
    that starts with exact zeros in all leads is treated alike in training
    and evaluation."""
    nonzero = (x != 0).any(1)                      # (batch, samples)
    first = nonzero.int().argmax(1)                # first real sample (0 when none)
    return torch.where(nonzero.any(1), first, torch.zeros_like(first))


def front_mask(pad, x):
    """(batch,) padded positions at x's resolution -> (batch, 1, T) float
    mask, 0 on the padding. The position holding the record's first sample
    is kept."""
    t = torch.arange(x.shape[-1], device=x.device)
    return (t[None, :] >= pad[:, None]).to(x.dtype)[:, None, :]


class Conv2dTwin(nn.Module):
    """The same network with every Conv1d, BatchNorm1d and MaxPool1d as its
    (1 x k) 2-D twin, on x.unsqueeze(2): the same arithmetic, the same
    outputs (max |logit diff| ~2e-8), for export.py's ONNX graph.
    onnxruntime's CPU kernels are blocked (NCHWc) only for 2-D convolutions:
    there the ResNet-34 on a 30-s window runs in 80 instead of 106 ms (bench.py
    --only serve). torch gains nothing from it, so the model itself stays 1-D.
    A --length-aware model (mask_padding) has no twin: its masks are 1-D."""

    def __init__(self, model):
        super().__init__()
        if model.mask_padding:
            raise ValueError('Conv2dTwin: a mask_padding model has no 2-D twin')
        import copy
        self.net = _to_2d(copy.deepcopy(model)).eval()

    def forward(self, x):
        return self.net.head(self.net.features(x.unsqueeze(2)).squeeze(2))


def _to_2d(module):
    """Replace, in place, each 1-D layer by its (1 x k) twin holding the same weights."""
    for name, child in module.named_children():
        if isinstance(child, nn.Conv1d):
            twin = nn.Conv2d(child.in_channels, child.out_channels, (1, child.kernel_size[0]),
                             (1, child.stride[0]), (0, child.padding[0]),
                             bias=child.bias is not None)
            twin.weight.data = child.weight.data.unsqueeze(2).clone()
            if child.bias is not None:
                twin.bias.data = child.bias.data.clone()
        elif isinstance(child, nn.BatchNorm1d):
            twin = nn.BatchNorm2d(child.num_features, child.eps, child.momentum)
            twin.load_state_dict(child.state_dict())
        elif isinstance(child, nn.MaxPool1d):
            twin = nn.MaxPool2d((1, child.kernel_size), (1, child.stride), (0, child.padding))
        else:
            _to_2d(child)
            continue
        setattr(module, name, twin)
    return module


def resnet18(input_channels=12, num_classes=9, **kwargs):
    return ResNet1d(ARCHS['resnet18'], input_channels, num_classes, **kwargs)


def resnet34(input_channels=12, num_classes=9, **kwargs):
    return ResNet1d(ARCHS['resnet34'], input_channels, num_classes, **kwargs)


NUM_CLASSES = len(CLASSES)


def build_model(arch='resnet34', num_leads=12, num_classes=NUM_CLASSES, **kwargs):
    if arch not in ARCHS:
        raise SystemExit(f"error: unknown --arch {arch!r}; use one of {', '.join(ARCHS)}")
    return ResNet1d(ARCHS[arch], num_leads, num_classes, **kwargs)


def batch_logits(model, x, device='cpu', precision='fp32'):
    """One batch (batch, leads, samples) through the model as every script
    scores it: no autograd, autocast at `precision` (utils.autocast), float32
    logits on `device`. main.py's validation, predict.py, the app and the API
    all go through here (probabilities() below)."""
    with torch.inference_mode(), autocast(device, precision):
        return model(x.to(device, non_blocking=True)).float()


def probabilities(model, x, device='cpu', precision='fp32', batch_size=32):
    """Model inputs (n, leads, samples), numpy or tensor -> sigmoid
    probabilities (n, classes) float32 numpy, in batches of batch_size: the
    one model -> probability path."""
    x = torch.as_tensor(x)
    device = torch.device(device)
    out = [torch.sigmoid(batch_logits(model, x[i:i + batch_size], device, precision)).cpu()
           for i in range(0, len(x), batch_size)]
    return (torch.cat(out) if out else torch.empty(0, model.fc.out_features)).numpy()


def infer_arch(state_dict):
    """The architecture whose block counts match a state_dict's layer keys."""
    blocks = []
    for stage in range(1, 5):
        idx = {int(k.split('.')[1]) for k in state_dict if k.startswith(f'layer{stage}.')}
        blocks.append(max(idx) + 1 if idx else 0)
    for name, layers in ARCHS.items():
        if layers == blocks:
            return name
    return f'unknown (blocks per stage {blocks})'
