"""The cache and labels that preprocess.py writes, read without torch.

    from records.cache import load_labels, load_cache, with_leads
    labels = load_labels('data/CPSC')          # labels.csv: patient_id, classes, fold, leads
    signals, index = load_cache('data/CPSC')   # int16 µV memmap (T, 12) + cache/index.csv
    rows, left_out = with_leads(labels, ['I'])  # records that hold or can derive lead I

folds.py, baselines.py and expert_features.py read them through this module
and so never import torch; dataset.py builds the PyTorch Dataset on it.
"""
from pathlib import Path

import numpy as np
import pandas as pd

from records.leads import LEADS, obtainable


def _require(path, data_dir):
    if not Path(path).exists():
        raise SystemExit(f'error: {path} is missing; run python preprocess.py '
                         f'--data-dir {data_dir}')


def load_index(data_dir):
    """cache/index.csv: patient_id, offset, length (rows in signals.npy)."""
    path = Path(data_dir) / 'cache' / 'index.csv'
    _require(path, data_dir)
    return pd.read_csv(path, dtype={'patient_id': str})


def load_cache(data_dir):
    """-> (signals: read-only memmap int16 (T, 12) µV, index DataFrame)."""
    path = Path(data_dir) / 'cache' / 'signals.npy'
    _require(path, data_dir)
    index = load_index(data_dir)
    signals = np.load(path, mmap_mode='r', allow_pickle=False)
    end = int((index['offset'] + index['length']).max()) if len(index) else 0
    if signals.ndim != 2 or signals.shape[1] != len(LEADS) or signals.shape[0] < end:
        raise SystemExit(f'error: {path} (shape {signals.shape}) does not match '
                         f'cache/index.csv; rerun python preprocess.py --data-dir '
                         f'{data_dir} --force')
    return signals, index


def load_labels(data_dir):
    """labels.csv: patient_id, the nine classes (0/1), fold (1..10)."""
    path = Path(data_dir) / 'labels.csv'
    _require(path, data_dir)
    return pd.read_csv(path, dtype={'patient_id': str})


def with_leads(labels, leads):
    """Rows of labels.csv whose record holds or can derive every lead of
    `leads` -> (those rows, how many were left out). Its `leads` column lists
    each record's recorded leads; a labels.csv without it is all 12-lead."""
    if 'leads' not in labels.columns or not len(labels):
        return labels, 0
    wanted = set(leads)
    ok = labels['leads'].fillna('').map(lambda s: wanted <= set(obtainable(s.split(',')
                                                                            if s else [])))
    return labels[ok.to_numpy(bool)], int((~ok).sum())
