"""Precision and determinism where they are claimed: no emulated bf16 on
GPUs, fp32 SHAP gradients on GPUs, --deterministic, and no dependence on the
str hash seed (PYTHONHASHSEED set after start-up does nothing)."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from helpers import FAST, make_tiny_cache

import main as main_py
import runs
import shap_values
import utils

ROOT = Path(__file__).resolve().parents[1]


def test_auto_precision_skips_emulated_bf16(monkeypatch):
    """A V100/T4 answers True to is_bf16_supported() (emulated) and False
    with including_emulation=False."""
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported',
                        lambda including_emulation=True: including_emulation)
    assert utils.select_precision(torch.device('cuda'), 'auto') == 'fp32'
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: True)
    assert utils.select_precision(torch.device('cuda'), 'auto') == 'bf16'
    assert utils.select_precision(torch.device('cuda'), 'fp32') == 'fp32'


def test_shap_gradients_default_to_fp32_on_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda including_emulation=True: True)
    assert shap_values.shap_precision(torch.device('cuda'), 'auto') == 'fp32'
    assert shap_values.shap_precision(torch.device('cuda'), 'bf16') == 'bf16'
    assert shap_values.shap_precision(torch.device('cpu'), 'auto') == \
        utils.select_precision(torch.device('cpu'), 'auto')


def test_deterministic_switch_sets_torch_cudnn_and_cublas():
    before = torch.are_deterministic_algorithms_enabled()
    try:
        utils.set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ['CUBLAS_WORKSPACE_CONFIG'] in (':4096:8', ':16:8')
    finally:
        utils.set_deterministic(before)


def test_deterministic_resume_is_exact(tmp_path):
    """2 epochs straight == 1 epoch + --resume for 1, weights bit for bit,
    with torch.use_deterministic_algorithms on (no op of the model refuses)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        data = make_tiny_cache(tmp_path / 'TINY', n=21)
        # constant LR: a 1-epoch cosine run would have another schedule than a 2-epoch one
        flags = ['--data-dir', str(data), '--deterministic', '--length-aware', '--sched', 'none',
                 *FAST]
        main_py.main([*flags, '--epochs', '2', '--root', str(tmp_path / 'a')])
        main_py.main([*flags, '--epochs', '1', '--root', str(tmp_path / 'b')])
        main_py.main([*flags, '--epochs', '2', '--root', str(tmp_path / 'b'), '--resume'])
        run = 'TINY-all-s42-f10'
        a = runs.read_checkpoint(tmp_path / 'a' / 'models' / run / 'last.pt')['model']
        b = runs.read_checkpoint(tmp_path / 'b' / 'models' / run / 'last.pt')['model']
        for k in a:
            assert torch.equal(a[k], b[k]), k
    finally:
        utils.set_deterministic(before)
        torch.set_num_threads(threads)


def test_seed_everything_leaves_pythonhashseed_alone(monkeypatch):
    monkeypatch.delenv('PYTHONHASHSEED', raising=False)
    utils.seed_everything(3)
    assert 'PYTHONHASHSEED' not in os.environ


def test_results_do_not_depend_on_the_hash_seed():
    child = Path(__file__).with_name('child_hash_seed.py')
    outs = set()
    for seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
        outs.add(subprocess.run([sys.executable, str(child)], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True).stdout)
    assert len(outs) == 1
