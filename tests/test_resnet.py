"""resnet.py: the study's architecture, its parameter names, checkpoint loading."""
from collections import Counter

import pytest
import torch

from resnet import build_model, resnet18, resnet34
from runs import load_checkpoint


def study_manifest(layers, leads=12, classes=9):
    """Key -> shape of the study's ResNet1d state_dict, written from the
    published layer spec (not from our module), so a renamed or reshaped
    parameter is caught."""
    def bn(prefix, c):
        return {f'{prefix}.weight': (c,), f'{prefix}.bias': (c,),
                f'{prefix}.running_mean': (c,), f'{prefix}.running_var': (c,),
                f'{prefix}.num_batches_tracked': ()}
    keys = {'conv1.weight': (64, leads, 15), **bn('bn1', 64)}
    inplanes = 64
    for stage, (planes, n) in enumerate(zip([64, 128, 256, 512], layers), start=1):
        for b in range(n):
            p = f'layer{stage}.{b}'
            cin = inplanes if b == 0 else planes
            keys[f'{p}.conv1.weight'] = (planes, cin, 7)
            keys.update(bn(f'{p}.bn1', planes))
            keys[f'{p}.conv2.weight'] = (planes, planes, 7)
            keys.update(bn(f'{p}.bn2', planes))
            if b == 0 and (stage > 1 or inplanes != planes):
                keys[f'{p}.downsample.0.weight'] = (planes, cin, 1)
                keys.update(bn(f'{p}.downsample.1', planes))
        inplanes = planes
    keys['fc.weight'] = (classes, 1024)
    keys['fc.bias'] = (classes,)
    return keys


@pytest.mark.parametrize('arch,layers', [('resnet34', [3, 4, 6, 3]), ('resnet18', [2, 2, 2, 2])])
def test_state_dict_matches_study_names_and_shapes(arch, layers):
    model = build_model(arch, 12)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert got == study_manifest(layers)


def test_resnet34_has_the_studys_parameter_count():
    model = resnet34(input_channels=12, num_classes=9)
    assert sum(p.numel() for p in model.parameters()) == 16_610_185
    # one lead: only the stem's input channels change (64 * 11 * 15 fewer)
    assert sum(p.numel() for p in resnet34(1).parameters()) == 16_610_185 - 64 * 11 * 15


def test_forward_shapes_any_length():
    model = resnet18(input_channels=3).eval()
    with torch.no_grad():
        for n in (64, 1000, 1237):
            assert model(torch.randn(2, 3, n)).shape == (2, 9)


def test_no_inplace_ops_and_no_module_reused():
    model = resnet18().train()
    for m in model.modules():
        assert not getattr(m, 'inplace', False), m
    calls = Counter()
    for name, m in model.named_modules():
        if not list(m.children()):
            m.register_forward_hook(lambda mod, i, o, name=name: calls.update([name]))
    x = torch.randn(2, 12, 500, requires_grad=True)
    model(x).sum().backward()
    assert calls and max(calls.values()) == 1, calls.most_common(3)
    # full backward hooks (what captum/SHAP use) fail on in-place outputs
    model.zero_grad()
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.register_full_backward_hook(lambda *a: None)
    x = torch.randn(2, 12, 500, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_bare_state_dict_loads_strict_with_leads(tmp_path):
    torch.manual_seed(0)
    src = resnet18(input_channels=2).eval()
    torch.save(src.state_dict(), tmp_path / 'w.pth')
    model, ckpt = load_checkpoint(tmp_path / 'w.pth', leads='I,aVR')
    assert ckpt['arch'] == 'resnet18' and ckpt['leads'] == ['I', 'aVR']
    x = torch.randn(3, 2, 700)
    with torch.no_grad():
        assert torch.equal(model(x), src(x))
    # without leads, bare weights are read as the study's 12 leads: refused here
    with pytest.raises(SystemExit, match='expects 2 input leads.*pass --leads'):
        load_checkpoint(tmp_path / 'w.pth')
    with pytest.raises(SystemExit, match='expects 2 input leads'):
        load_checkpoint(tmp_path / 'w.pth', leads='all')


def test_checkpoint_errors_name_the_missing_file_the_leads_and_the_architecture(tmp_path):
    with pytest.raises(SystemExit, match=r'no checkpoint .*main\.py'):
        load_checkpoint(tmp_path / 'missing.pt', leads='all')
    model = resnet18(input_channels=1)
    ckpt = {'model': model.state_dict(), 'arch': 'resnet18', 'leads': ['II']}
    torch.save(ckpt, tmp_path / 'best.pt')
    with pytest.raises(SystemExit, match='trained on leads II, not I'):
        load_checkpoint(tmp_path / 'best.pt', leads='I')
    loaded, got = load_checkpoint(tmp_path / 'best.pt', leads='II')
    assert got['leads'] == ['II'] and not loaded.training
    torch.save({**ckpt, 'arch': 'vgg'}, tmp_path / 'vgg.pt')
    with pytest.raises(SystemExit, match='unknown architecture'):
        load_checkpoint(tmp_path / 'vgg.pt')
    with pytest.raises(SystemExit, match='unknown --arch'):
        build_model('resnet50', 12)


# --------------------------------------------------------------------------
# resnet.Dropout: nn.Dropout with a faster CPU mask.

@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_fast_dropout_keeps_the_stock_statistics(dtype):
    """Keep rate 0.8 and scale 1/keep, as nn.Dropout(0.2): on 2**22 elements
    the keep rate's standard error is 2e-4, so 1e-3 is a 5-sigma bound; the
    mean output equals the input in expectation; the gradient is the mask."""
    from resnet import Dropout
    torch.manual_seed(0)
    d = Dropout(0.2).train()
    x = torch.ones(4, 256, 4096, dtype=dtype, requires_grad=True)
    y = d(x)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 1e-3
    scale = y[kept].float().unique()
    assert len(scale) == 1 and scale.item() == pytest.approx(65536 / 52429, rel=1e-2)
    assert abs(y.float().mean().item() - 1.0) < 2e-3
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())   # d(x * m)/dx = m, with x = 1
    # no sample, channel or time step is special: along each axis the keep
    # rate stays within 5 standard errors of 0.8 (over up to 4096 rates)
    for axis in range(3):
        rate = kept.float().mean(dim=[a for a in range(3) if a != axis])
        se = (0.16 / (x.numel() / x.shape[axis])) ** 0.5
        assert (rate - 0.8).abs().max().item() < 5 * se, axis


def test_fast_dropout_is_seeded_and_off_in_eval():
    from resnet import Dropout
    d = Dropout(0.2).train()
    x = torch.randn(2, 64, 1000)
    torch.manual_seed(3)
    a = d(x)
    torch.manual_seed(3)
    assert torch.equal(a, d(x))
    assert not torch.equal(a, d(x))           # the generator moved on
    assert torch.equal(d.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    # p too close to 1 for a 16-bit threshold: the stock module, not a division by 0
    torch.manual_seed(3)
    near_one = Dropout(1 - 2 ** -18).train()(x)
    torch.manual_seed(3)
    assert torch.equal(near_one, torch.nn.Dropout(1 - 2 ** -18).train()(x))
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))


def test_use_fast_dropout_switches_to_the_stock_mask():
    """With fast off, the module draws exactly nn.Dropout's mask."""
    from resnet import Dropout, use_fast_dropout
    model = use_fast_dropout(build_model('resnet18', 12), False).train()
    blocks = [m for m in model.modules() if isinstance(m, Dropout)]
    assert len(blocks) == 9 and not any(m.fast for m in blocks)   # 8 blocks + the head
    x = torch.randn(2, 64, 500)
    torch.manual_seed(5)
    ours = blocks[0](x)
    torch.manual_seed(5)
    assert torch.equal(ours, torch.nn.Dropout(0.2).train()(x))
    use_fast_dropout(model, True)
    torch.manual_seed(5)
    assert not torch.equal(blocks[0](x), ours)
