"""Builders that several test files share: fabricated records in the formats
the readers accept, preprocessed caches written directly, and tiny
checkpoints (random or trained for one epoch).

Fixtures that use them live in conftest.py; the app's and the API's builders
in web_helpers.py; the tiny SHAP model in shap_helpers.py.
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch
import wfdb

import main as main_py
from archive import read_rows
import predict
import preprocess
import records
import utils
from records import FS, LEADS, WINDOW
from resnet import build_model
from utils import CLASSES

# --------------------------------------------------------------------------
# Signals.


def make_signal(n, fs=500, nleads=12, seed=0):
    """A few slow sines plus noise, ~1 mV, different per lead."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    freqs = rng.uniform(0.5, 8, (1, nleads))
    return 0.8 * np.sin(2 * np.pi * freqs * t[:, None]) + 0.05 * rng.standard_normal((n, nleads))


def ecg_like(n, fs, nleads, seed=0):
    """Spiky beats at ~70 bpm plus slow waves and noise, ~1 mV, per lead."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / fs
    beats = np.exp(-((t % (60 / 70) - 0.3) / 0.012) ** 2)
    amp = rng.uniform(0.5, 1.5, nleads) * rng.choice([-1, 1], nleads)
    slow = 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 1, nleads) * t[:, None])
    return beats[:, None] * amp + slow + 0.01 * rng.standard_normal((n, nleads))


def beat_train(beats, n, fs=FS, qrs_sd=0.010, rng=None):
    """(n, 12) mV: a P-QRS-T complex (Gaussian waves) at each beat, per-lead
    gains including negative ones (like aVR), and a little noise."""
    t = np.arange(n) / fs
    x = np.zeros(n)
    for b in np.asarray(beats) / fs:
        x += 0.15 * np.exp(-0.5 * ((t - b + 0.16) / 0.02) ** 2)     # P
        x += 1.0 * np.exp(-0.5 * ((t - b) / qrs_sd) ** 2)           # QRS
        x += 0.3 * np.exp(-0.5 * ((t - b - 0.28) / 0.05) ** 2)      # T
    gains = np.array([0.8, 1.0, 0.4, -0.9, 0.3, 0.7, -0.6, 0.5, 0.9, 1.2, 1.1, 0.9])
    rng = rng or np.random.default_rng(0)
    return x[:, None] * gains[None, :] + 0.01 * rng.standard_normal((n, 12))


def regular_beats(hr, duration, fs=FS, start=0.3):
    """Beat positions (samples) at a fixed heart rate, 0.3 s clear of the end."""
    return np.arange(start, duration - 0.3, 60.0 / hr) * fs


def random_labels(n, seed):
    """(n, 9) multi-label 0/1 rows with CPSC2018-like class frequencies, each
    row with at least one class."""
    rng = np.random.default_rng(seed)
    p = np.array([0.13, 0.18, 0.1, 0.03, 0.25, 0.09, 0.1, 0.12, 0.03])  # CPSC-like
    y = (rng.random((n, 9)) < p).astype(int)
    y[y.sum(1) == 0, 0] = 1
    return y


# --------------------------------------------------------------------------
# Records on disk.

def write_record(folder, name, signal_mV, fs=500, leads=LEADS, dx='426783006', age='60',
                 sex='Male', gain=1000, units='mV', fmt='mat'):
    """A WFDB record as the PhysioNet/CinC challenges ship it (fmt='mat':
    MATLAB v4 `val`, header written by hand) or as wfdb.wrsamp writes it
    (fmt='dat'). dx=None leaves out the Dx comment."""
    folder.mkdir(parents=True, exist_ok=True)
    comments = [f'Age: {age}', f'Sex: {sex}'] + ([] if dx is None else [f'Dx: {dx}'])
    n = len(signal_mV)
    if fmt == 'dat':
        wfdb.wrsamp(name, fs=fs, units=[units] * len(leads), sig_name=list(leads),
                    p_signal=np.asarray(signal_mV, dtype=np.float64), fmt=['16'] * len(leads),
                    adc_gain=[float(gain)] * len(leads), baseline=[0] * len(leads),
                    comments=comments, write_dir=str(folder))
        return folder / f'{name}.hea'
    val = np.rint(np.asarray(signal_mV) * gain).astype(np.int16).T  # (nleads, n)
    scipy.io.savemat(folder / f'{name}.mat', {'val': val}, format='4')
    lines = [f'{name} {len(leads)} {fs} {n}']
    for i, lead in enumerate(leads):
        first = int(val[i, 0]) if n else 0
        lines.append(f'{name}.mat 16x1+24 {gain}/{units} 16 0 {first} 0 0 {lead}')
    lines += [f'# {c}' for c in comments]
    (folder / f'{name}.hea').write_text('\n'.join(lines) + '\n')
    return folder / f'{name}.hea'


def wrsamp(folder, name, signal, fs, leads, units='mV', fmt='16', gain=1000.0):
    """A WFDB .dat record of any lead set, as wfdb.wrsamp writes it -> its
    path without suffix."""
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=[units] * len(leads), sig_name=list(leads),
                p_signal=np.asarray(signal, dtype=np.float64), fmt=[fmt] * len(leads),
                adc_gain=[gain] * len(leads), baseline=[0] * len(leads),
                comments=['Age: 50', 'Sex: F', 'Dx: 426783006'], write_dir=str(folder))
    return folder / name


# --------------------------------------------------------------------------
# Caches, written directly in preprocess.py's format.

def write_cache(root, signals_mV, labels, folds):
    """A cache exactly as the contract of preprocess.py describes it."""
    (root / 'cache').mkdir(parents=True, exist_ok=True)
    ids = [f'A{i + 1:04d}' for i in range(len(signals_mV))]
    q = [np.clip(np.rint(s * 1000), -32768, 32767).astype(np.int16)[-15000:]
         for s in signals_mV]
    lengths = [len(s) for s in q]
    np.save(root / 'cache' / 'signals.npy', np.concatenate(q))
    pd.DataFrame({'patient_id': ids, 'offset': np.r_[0, np.cumsum(lengths)[:-1]],
                  'length': lengths}).to_csv(root / 'cache' / 'index.csv', index=False)
    (root / 'cache' / 'meta.json').write_text(json.dumps({'fs': FS, 'leads': LEADS}))
    df = pd.DataFrame(np.asarray(labels, dtype=int), columns=CLASSES)
    df.insert(0, 'patient_id', ids)
    df['fold'] = folds
    df.to_csv(root / 'labels.csv', index=False)
    return ids


# Classes given to the tiny records, with the frequency (Hz) of the sine that
# marks them, so a model can learn something in one epoch.
TINY_CLASSES = {'SNR': 8.0, 'AF': 20.0, 'RBBB': 45.0}


def make_tiny_cache(data_dir, n=41, seed=0, fs=FS):
    """A preprocessed database in preprocess.py's format, written directly:
    n records of 0.24-0.8 s, record i in fold i % 10 + 1 (fold 1 gets the odd
    one), labelled one of TINY_CLASSES in turn and carrying its sine."""
    rng = np.random.default_rng(seed)
    data_dir = Path(data_dir)
    (data_dir / 'cache').mkdir(parents=True, exist_ok=True)
    signals, index, labels, ref = [], [], [], []
    offset = 0
    names = list(TINY_CLASSES)
    for i in range(n):
        pid = f'T{i:04d}'
        cls = names[(i // 10) % len(names)]
        length = int(rng.integers(120, 400))
        t = np.arange(length) / fs
        x = rng.normal(0, 0.1, (length, len(LEADS)))
        x += np.sin(2 * np.pi * TINY_CLASSES[cls] * t)[:, None] * rng.uniform(0.5, 1.0, 12)
        signals.append(np.rint(x * 1000).astype(np.int16))
        index.append({'patient_id': pid, 'offset': offset, 'length': length})
        offset += length
        row = {'patient_id': pid, **{c: int(c == cls) for c in CLASSES}, 'fold': i % 10 + 1}
        labels.append(row)
        ref.append({'patient_id': pid, 'sample_rate': fs, 'signal_len': length, 'age': 50,
                    'sex': 'Male', 'dx': utils.CLASS_TO_SNOMED[cls]})
    np.save(data_dir / 'cache' / 'signals.npy', np.concatenate(signals))
    pd.DataFrame(index).to_csv(data_dir / 'cache' / 'index.csv', index=False)
    pd.DataFrame(labels).to_csv(data_dir / 'labels.csv', index=False)
    pd.DataFrame(ref).to_csv(data_dir / 'reference.csv', index=False)
    (data_dir / 'cache' / 'meta.json').write_text(json.dumps(
        {'fs': fs, 'window': WINDOW, 'leads': LEADS, 'records': n, 'units': 'uV'}))
    return data_dir


# Tiny but real: resnet18, 256-sample windows, fp32, no worker processes.
FAST = ['--arch', 'resnet18', '--window', '256', '--batch-size', '8', '--workers', '0',
        '--precision', 'fp32', '--device', 'cpu', '--test-fold', '10']


# --------------------------------------------------------------------------
# Checkpoints.

def one_epoch_model(base, leads):
    """A 1-epoch resnet18 (window 256) on make_tiny_cache's database, trained
    under `base` on `leads` ('all', 'II') -> its best.pt. For tests that need
    a trained model of some lead set to read records with."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = make_tiny_cache(Path(base) / 'TINY')
        main_py.main(['--data-dir', str(data), '--epochs', '1', '--leads', leads,
                      '--root', str(base), *FAST])
    finally:
        torch.set_num_threads(threads)
    return Path(base) / 'models' / f'TINY-{leads}-s42-f10' / 'best.pt'


def tiny_checkpoint(root, run, window):
    """models/<run>/best.pt under root: a random ResNet-18 (seed 0) with a
    main.py checkpoint's fields -> (model, path). For tests of the serving
    side (the app, the API), which need a model, not a trained one."""
    torch.manual_seed(0)
    model = build_model('resnet18', 12).eval()
    ckpt = {'model': model.state_dict(), 'leads': list(records.LEADS), 'classes': utils.CLASSES,
            'arch': 'resnet18', 'window': window, 'epoch': 2, 'best_epoch': 1,
            'folds': {'train': [1, 2], 'val': [3], 'test': [7]},
            'args': {'data_dir': 'data/TINY', 'seed': 42, 'window': window}}
    path = Path(root) / 'models' / run / 'best.pt'
    utils.atomic_torch_save(ckpt, path)
    return model, path


def predict_records(model, *paths, extra=()):
    """predict.py --records on CPU in fp32 -> its table of scores (a DataFrame)."""
    return read_rows(predict.main(['--model-path', str(model), '--device', 'cpu', '--precision',
                                   'fp32', '--records', *map(str, paths), *extra]))


def ctrl_c_on_third_record(monkeypatch, build):
    """build() stopped by a Ctrl-C arriving while preprocess.py reads its
    third record (in this process: --workers 0 or 1)."""
    real, calls = preprocess._cache_one, []

    def ctrl_c_on_third(job):
        calls.append(job)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(preprocess, '_cache_one', ctrl_c_on_third)
    with pytest.raises(KeyboardInterrupt):
        build()
    monkeypatch.setattr(preprocess, '_cache_one', real)
