"""Precision and determinism where they are claimed: no emulated bf16 on
GPUs, fp32 SHAP gradients on GPUs, --deterministic, and no dependence on the
str hash seed (PYTHONHASHSEED set after start-up does nothing)."""
import os
import subprocess
import sys
from pathlib import Path

import torch
from test_main import FAST, make_tiny_cache

import main as main_py
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


def test_deterministic_switch():
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
        a = torch.load(tmp_path / 'a' / 'models' / run / 'last.pt', weights_only=True)['model']
        b = torch.load(tmp_path / 'b' / 'models' / run / 'last.pt', weights_only=True)['model']
        for k in a:
            assert torch.equal(a[k], b[k]), k
    finally:
        utils.set_deterministic(before)
        torch.set_num_threads(threads)


def test_seed_everything_leaves_pythonhashseed_alone(monkeypatch):
    monkeypatch.delenv('PYTHONHASHSEED', raising=False)
    utils.seed_everything(3)
    assert 'PYTHONHASHSEED' not in os.environ


PROBE = """
import numpy as np, pandas as pd, folds, utils
y = (np.random.default_rng(0).random((300, 9)) < 0.2).astype(int)
groups = [f'g{i // 3}' for i in range(300)]
f = folds.assign_group_folds(y, groups, seed=42)
labels = pd.DataFrame({'patient_id': [f'R{i}' for i in range(300)], 'fold': f})
codes = [['426783006', '59118001', '164889003', '17338001'][::k or 1] for k in range(-2, 3)]
print(folds.fold_manifest(labels)['hash'], [utils.dx_to_classes(c) for c in codes])
"""


def test_results_do_not_depend_on_the_hash_seed():
    outs = set()
    for seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, '-c', PROBE], cwd=ROOT, env=env, check=True,
                                capture_output=True, text=True).stdout)
    assert len(outs) == 1
