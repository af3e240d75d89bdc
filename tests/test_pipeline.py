"""`make demo` in miniature: every script, end to end, through pipeline.py.

A tiny synthetic set, one epoch of a small network on 2 s windows, SHAP on one
record: it checks that the scripts fit together (file names, flags, formats)
and that REPORT.md is built from what they wrote, not that the model is good.
"""
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import utils

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_pipeline_in_miniature(tmp_path):
    cmd = [sys.executable, str(ROOT / 'pipeline.py'), 'demo', '--n', '60', '--epochs', '1',
           '--window', '1000', '--batch-size', '8', '--shap-records', '1',
           '--background', '4', '--nsamples', '2', '--plots', 'A0001', '--quick-baselines']
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for script in ('synthetic', 'preprocess', 'statistic', 'baselines', 'main', 'predict',
                   'shap_values', 'visualize'):
        assert f'$ python {script}.py' in out.stdout

    run = utils.run_name('data/SYNTH', 'all', 42)
    metrics = pd.read_csv(tmp_path / 'results' / run / 'metrics.csv', index_col=0)
    assert list(metrics.index) == utils.CLASSES + ['macro']
    for clf in ('LR', 'RF', 'LGB', 'MLP'):
        assert (tmp_path / 'results' / 'baselines' / clf / run / 'metrics.csv').exists()
    assert (tmp_path / 'models' / run / 'best.pt').exists()
    assert (tmp_path / 'shap' / run / 'shap_values.npz').exists()
    assert (tmp_path / 'results' / 'demo' / 'plots' / 'A0001-clinical.png').exists()

    report = (tmp_path / 'results' / 'demo' / 'REPORT.md').read_text()
    # The report quotes the numbers of the files, not numbers of its own.
    assert f"{metrics.loc['macro', 'auc']:.3f}" in report
    lr = pd.read_csv(tmp_path / 'results' / 'baselines' / 'LR' / run / 'metrics.csv',
                     index_col=0)
    assert f"{lr.loc['macro', 'f1']:.3f}" in report
    assert '## Dataset' in report and '| All |' in report
    for link in re.findall(r'\]\(\.\./\.\./([^)]+)\)', report):
        assert (tmp_path / link).exists(), link
    assert 'confusion.png' in report and 'lead_importance.png' in report

    # A second run reuses everything that is done: training is not repeated.
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'resumed' in again.stdout and 'epoch 1 train' not in again.stderr


@pytest.mark.slow
def test_paper_pipeline_in_miniature(tmp_path):
    """`make paper` on a tiny synthetic 'CPSC': the 12-lead run, one single-lead
    run, baselines, SHAP and the report against the published numbers; a rerun
    skips what is done."""
    data = tmp_path / 'data' / 'CPSC'
    subprocess.run([sys.executable, str(ROOT / 'synthetic.py'), '--out', str(data),
                    '--n', '60', '--seed', '1'], check=True, capture_output=True)
    cmd = [sys.executable, str(ROOT / 'pipeline.py'), 'paper', '--data-dir', 'data/CPSC',
           '--epochs', '1', '--single-leads', 'aVR', '--shap-records', '1',
           '--main-args', '--arch resnet18 --window 1000 --batch-size 8',
           '--shap-args', '--background 4 --nsamples 2']
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    report = (tmp_path / 'results' / 'paper' / 'REPORT.md').read_text()
    macro = pd.read_csv(tmp_path / 'results' / utils.run_name(data, 'all', 42) / 'metrics.csv',
                        index_col=0).loc['macro']
    assert f"| macro AUC | {macro['auc']:.3f} | 0.970 | {macro['auc'] - 0.970:+.3f} |" in report
    assert '| aVR |' in report and 'published: I, aVR, V5' in report
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout.count('resumed') == 2
