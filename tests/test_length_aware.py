"""--length-aware trains on what it is evaluated on: with mask_padding the
ResNet's output does not depend on how much front padding a record has, so
batches padded to their longest record (training) and the full window
(validation, test, predict.py) give the same scores; the study's weights
still load strictly and its pooling is unchanged."""
import numpy as np
import pytest
import torch
from helpers import FAST, make_tiny_cache

import main as main_py
from resnet import build_model
from runs import load_checkpoint


def perturbed(mask_padding, arch='resnet18', seed=0):
    """A model whose batch norms map zeros to non-zeros, as a trained one does."""
    torch.manual_seed(seed)
    m = build_model(arch, 12, mask_padding=mask_padding)
    g = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=g) - 0.5)
            mod.bias.data.copy_(torch.rand(mod.bias.shape, generator=g) - 0.5)
    return m.eval()


def padded(rec, width):
    x = torch.zeros(rec.shape[0], rec.shape[1], width)
    x[..., width - rec.shape[-1]:] = rec
    return x


def test_output_does_not_depend_on_the_padding():
    rec = torch.randn(3, 12, 1000, generator=torch.Generator().manual_seed(1))
    widths = [1024, 1088, 4096, 15000]  # batch-padded (multiples of 64) and the full window
    outs = {}
    for mask in (False, True):
        m = perturbed(mask)
        with torch.no_grad():
            outs[mask] = [m(padded(rec, w)) for w in widths]
    for o in outs[True][1:]:
        torch.testing.assert_close(o, outs[True][0], atol=1e-5, rtol=1e-5)
    spread = max((o - outs[False][0]).abs().max().item() for o in outs[False][1:])
    assert spread > 100 * 1e-5  # the study's pooling does depend on it


def test_masked_model_equals_plain_model_without_padding():
    rec = torch.randn(2, 12, 1024, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(perturbed(True)(rec), perturbed(False)(rec),
                                   atol=1e-5, rtol=1e-5)


def test_study_state_dict_loads_strictly_into_the_masked_model():
    study = build_model('resnet34', 12).state_dict()
    model = build_model('resnet34', 12, mask_padding=True)
    model.load_state_dict(study, strict=True)
    assert set(model.state_dict()) == set(study)


def test_length_aware_run_scores_the_same_trimmed_or_full(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = make_tiny_cache(tmp_path / 'TINY')
        main_py.main(['--data-dir', str(data), '--epochs', '1', '--root', str(tmp_path),
                      '--length-aware', *FAST])
        path = tmp_path / 'models' / 'TINY-all-s42-f10' / 'best.pt'
        model, ckpt = load_checkpoint(path, leads='all')
        assert ckpt['mask_padding'] is True and model.mask_padding is True
        from dataset import ECGDataset, collate
        full = ECGDataset(data, [10], window=256)
        trim = ECGDataset(data, [10], window=256, trim=True)
        idx = list(range(len(full)))
        with torch.no_grad():
            a = model(collate([full[i] for i in idx])[0])
            b = model(collate([trim[i] for i in idx])[0])
        assert collate([trim[i] for i in idx])[0].shape[-1] != 256 or \
            np.any(trim.lengths < 256)
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize('arch', ['resnet18'])
def test_gradients_flow_through_the_mask_and_skip_the_padding_in_eval(arch):
    m = perturbed(True, arch).train()
    x = padded(torch.randn(2, 12, 700), 1024).requires_grad_(True)
    m(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad[..., -700:].abs().sum() > 0
    # evaluated (SHAP, saliency): the output does not depend on the padding
    # beyond the first convolution's reach (training's batch statistics do)
    x.grad = None
    m.eval()(x).sum().backward()
    assert x.grad[..., :300].abs().sum() == 0 and x.grad[..., -700:].abs().sum() > 0


def test_plain_head_is_the_studys_adaptive_pooling():
    """mean/amax (deterministic on CUDA) give the study's AdaptiveAvg/MaxPool1d(1)."""
    m = perturbed(False)
    x = torch.randn(2, 12, 1500, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        f = m.features(x)
        pooled = torch.cat((torch.nn.AdaptiveAvgPool1d(1)(f), torch.nn.AdaptiveMaxPool1d(1)(f)),
                           dim=1).flatten(1)
        torch.testing.assert_close(m(x), m.fc(pooled), atol=1e-6, rtol=1e-6)
