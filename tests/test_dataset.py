"""dataset.py: reading records, the cache-backed ECGDataset (padding, leads,
augmentation reproducible across DataLoader workers), length-aware batching."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import wfdb
from helpers import make_signal, write_record
from torch.utils.data import DataLoader

import preprocess
from dataset import (
    ECGDataset,
    LengthBucketSampler,
    collate,
    load_cache,
    load_labels,
    pad_collate,
    split_data,
)
from records import LEADS, RecordError, prepare, read_header, read_record
from utils import CLASSES

LENGTHS = [1500, 2500, 4000, 5000, 5000, 6000, 7500, 9000, 12000, 15000, 20000, 3000,
           4500, 5000, 8000, 10000, 2000, 16000, 6500, 7000]


@pytest.fixture(scope='module')
def db(tmp_path_factory):
    """20 fabricated records of 3-40 s, labelled, preprocessed."""
    folder = tmp_path_factory.mktemp('DB')
    codes = ['426783006', '164889003', '270492004', '164909002', '59118001',
             '284470004', '164884008', '429622005', '164931005']
    for i, n in enumerate(LENGTHS):
        dx = ','.join(codes[j] for j in {i % 9, (3 * i) % 9})
        write_record(folder, f'A{i:04d}', make_signal(n, seed=i), dx=dx)
    preprocess.main(['--data-dir', str(folder), '--workers', '1'])
    return folder


ALL_FOLDS = list(range(1, 11))


def test_items_are_padded_tails_in_mV(db):
    ds = ECGDataset(db, ALL_FOLDS)
    labels = load_labels(db)
    assert ds.patient_ids == labels['patient_id'].tolist() and len(ds) == 20
    for i, name in enumerate(ds.patient_ids):
        x, y = ds[i]
        assert x.dtype == torch.float32 and x.shape == (12, 15000)
        n = LENGTHS[int(name[1:])]
        assert ds.lengths[i] == min(n, 15000)
        expected = np.zeros((12, 15000), np.float32)
        tail = make_signal(n, seed=int(name[1:]))[-15000:]
        expected[:, 15000 - len(tail):] = np.rint(tail.T * 1000) / 1000
        np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
        # predict.py's path gives exactly the same input
        np.testing.assert_array_equal(
            x.numpy(), prepare(read_record(db / f'{name}.hea'), LEADS).x)
        assert y.dtype == torch.float32
        assert y.tolist() == labels.loc[i, CLASSES].astype(float).tolist()
    assert ds.labels.shape == (20, 9) and ds.labels.dtype == np.float32


def test_dataset_holds_its_folds_records_and_picks_leads_by_name(db):
    labels = load_labels(db)
    test = split_data(42)[2]
    ds = ECGDataset(db, test)
    assert ds.patient_ids == labels.loc[labels['fold'].isin(test), 'patient_id'].tolist()
    full = ECGDataset(db, ALL_FOLDS)
    sub = ECGDataset(db, ALL_FOLDS, leads='I,aVR,V5', window=4000)
    assert sub.leads == ['I', 'aVR', 'V5']
    for i in range(len(full)):
        x = sub[i][0]
        assert x.shape == (3, 4000)
        np.testing.assert_array_equal(x.numpy(), full[i][0].numpy()[[0, 3, 10], -4000:])


def test_augmentation_follows_the_study_and_is_seeded(db):
    plain = ECGDataset(db, ALL_FOLDS)
    aug = ECGDataset(db, ALL_FOLDS, augment=True, seed=1)
    changed, seen = 0, {}
    for epoch in range(5):
        aug.set_epoch(epoch)
        for i in range(len(aug)):
            x, x0 = aug[i][0].numpy(), plain[i][0].numpy()
            np.testing.assert_array_equal(x, aug[i][0].numpy())  # same (seed, epoch, index)
            seen[epoch, i] = x
            n = plain.lengths[i]
            assert not x[:, :15000 - n].any()  # the padding stays zero
            # Per lead x = a * x0 + b: one factor and one shift per lead.
            for lead in range(12):
                a, b = np.polyfit(x0[lead, -n:], x[lead, -n:], 1)
                assert 0.5 < a < 1.5 and abs(b) <= 0.0205
            changed += not np.array_equal(x, x0)
    # Scaling and shift each with p = 0.3085: ~52% of items change.
    assert 0.3 < changed / 100 < 0.75
    assert any(not np.array_equal(seen[0, i], seen[1, i]) for i in range(len(aug)))
    aug.set_epoch(0)
    assert all(np.array_equal(aug[i][0].numpy(), seen[0, i]) for i in range(len(aug)))


def batches(loader, epochs):
    out = []
    for epoch in epochs:
        loader.dataset.set_epoch(epoch)
        out.append([x.clone() for x, _ in loader])
    return out


def test_same_batches_with_any_number_of_workers(db):
    ds = ECGDataset(db, ALL_FOLDS, augment=True, seed=3)
    # Reference: __getitem__ item by item, stacked.
    reference = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        reference.append([torch.stack([ds[i][0] for i in range(s, min(s + 4, len(ds)))])
                          for s in range(0, len(ds), 4)])
    serial = batches(DataLoader(ds, batch_size=4, num_workers=0, collate_fn=collate), [0, 1])
    parallel = batches(DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate), [0, 1])
    persistent = batches(DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True,
                                    collate_fn=collate), [0, 1])
    default = batches(DataLoader(ds, batch_size=4, num_workers=0), [0, 1])  # no collate_fn
    assert not all(torch.equal(a, b) for a, b in zip(reference[0], reference[1]))  # epochs differ
    for other in (serial, parallel, persistent, default):
        for ep in range(2):
            assert len(other[ep]) == len(reference[ep])
            assert all(torch.equal(a, b) for a, b in zip(reference[ep], other[ep]))


def test_collate_pads_trimmed_items(db):
    ds = ECGDataset(db, ALL_FOLDS, leads='V1,I', trim=True)
    x, y = collate([ds[i] for i in [3, 0, 7]])
    assert x.shape[:2] == (3, 2) and x.shape[2] % 64 == 0
    assert x.shape[2] - 64 < ds.lengths[[3, 0, 7]].max() <= x.shape[2]
    for row, label, i in zip(x, y, [3, 0, 7]):
        n = ds.lengths[i]
        assert torch.equal(row[:, -n:], ds[i][0]) and not row[:, :-n].any()
        assert torch.equal(label, ds[i][1])


def test_dataset_pickles_without_the_memmap(db):
    ds = ECGDataset(db, ALL_FOLDS)
    ds[0]
    clone = pickle.loads(pickle.dumps(ds))
    assert len(pickle.dumps(ds)) < 100_000  # no signal copied into spawned workers
    assert torch.equal(clone[5][0], ds[5][0])


def test_trim_and_length_buckets(db):
    ds = ECGDataset(db, ALL_FOLDS, trim=True)
    for i in range(len(ds)):
        assert ds[i][0].shape == (12, ds.lengths[i])
    sampler = LengthBucketSampler(ds.lengths, batch_size=4, seed=5)
    epoch0 = list(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(len(ds)))  # each once
    assert len(epoch0) == len(sampler) == 5
    assert list(LengthBucketSampler(ds.lengths, batch_size=4, seed=5)) == epoch0  # seeded
    sampler.set_epoch(1)
    assert list(sampler) != epoch0
    # Similar lengths together: far less spread in a batch than random batches.
    spread = np.mean([np.ptp(ds.lengths[b]) for b in epoch0])
    rng = np.random.default_rng(0)
    random_spread = np.mean([np.ptp(ds.lengths[rng.permutation(20)[:4]]) for _ in range(200)])
    assert spread < 0.5 * random_spread

    for b in epoch0:
        x, y = pad_collate([ds[i] for i in b])
        longest = ds.lengths[b].max()
        assert x.shape[0] == len(b) and x.shape[2] % 64 == 0
        assert longest <= x.shape[2] < longest + 64
        assert y.shape == (len(b), 9)
        for row, i in zip(x, b):
            n = ds.lengths[i]
            assert not row[:, :x.shape[2] - n].any()
            assert torch.equal(row[:, -n:], ds[i][0])
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=pad_collate)
    assert sum(len(y) for _, y in loader) == len(ds)


@pytest.mark.parametrize('n', [20, 37, 64])
def test_bucket_sampler_ranks_partition_the_data(n):
    lengths = np.random.default_rng(n).integers(1000, 15001, n)
    ranks = [LengthBucketSampler(lengths, 4, seed=1, num_replicas=2, rank=r) for r in range(2)]
    for epoch in range(3):
        for s in ranks:
            s.set_epoch(epoch)
        parts = [[i for b in s for i in b] for s in ranks]
        assert sorted(parts[0] + parts[1]) == list(range(n))  # disjoint, complete
        assert len(list(ranks[0])) == len(list(ranks[1])) == len(ranks[0])  # same steps
        assert all(1 <= len(b) <= 4 for s in ranks for b in s)


def test_missing_files_fail_with_the_fix(tmp_path, db):
    with pytest.raises(SystemExit, match='run python preprocess.py --data-dir'):
        load_labels(tmp_path)
    with pytest.raises(SystemExit, match='run python preprocess.py --data-dir'):
        load_cache(tmp_path)
    signals, index = load_cache(db)
    assert signals.dtype == np.int16 and signals.shape == (index['length'].sum(), 12)
    # labels.csv naming a record the cache lacks: stale cache
    (tmp_path / 'cache').mkdir()
    index.iloc[:-1].to_csv(tmp_path / 'cache' / 'index.csv', index=False)
    load_labels(db).to_csv(tmp_path / 'labels.csv', index=False)
    with pytest.raises(SystemExit, match='not in .*cache; rerun'):
        ECGDataset(tmp_path, ALL_FOLDS)


# --------------------------------------------------------------------------
# read_record / read_header on real records.

def test_read_record_path_forms(shared_data):
    base = shared_data / 'cpsc2018_wfdb' / 'A0001'
    ref, _ = wfdb.rdsamp(str(base))
    for path in (base, base.with_suffix('.hea'), base.with_suffix('.mat'), str(base)):
        rec = read_record(path)
        assert rec.name == 'A0001' and rec.fs == 500 and rec.dx == ['59118001']
        assert rec.signal.shape == (7500, 12) and rec.leads == LEADS
        np.testing.assert_allclose(rec.signal, ref, atol=1e-12)
    assert (rec.age, rec.sex) == (74, 'Male')


def test_read_header_matches_wfdb(shared_data):
    for hea in sorted((shared_data / 'physionet2021').glob('*.hea')):
        ours, theirs = read_header(hea), wfdb.rdheader(str(hea.with_suffix('')))
        assert (ours['fs'], ours['sig_len']) == (theirs.fs, theirs.sig_len)
        assert ours['sig_names'] == theirs.sig_name
        assert ours['gains'] == theirs.adc_gain and ours['baselines'] == theirs.baseline
        assert ours['fmts'] == theirs.fmt
        dx = next(c for c in theirs.comments if c.startswith('Dx'))
        assert ','.join(ours['dx']) == dx.split(':')[1].strip()


def test_record_error_names_record_and_reason(shared_data, tmp_path):
    with pytest.raises(RecordError) as e:
        prepare(read_record(shared_data / 'mitdb' / '100'), LEADS)  # MLII and V5 only
    assert e.value.record == '100'
    assert str(e.value).startswith('100: lacks lead(s) I, III, aVR, aVL, aVF, V1, V2')
    assert '(it has MLII, V5;' in e.value.reason
    with pytest.raises(RecordError, match='^NOPE: cannot read header'):
        read_record(tmp_path / 'NOPE')


def test_reference_csv_gives_every_record_its_length_and_rate(db):
    ref = pd.read_csv(db / 'reference.csv')
    assert ref['signal_len'].tolist() == LENGTHS
    assert (ref['sample_rate'] == 500).all()


def test_the_torch_free_side_imports_no_torch():
    """folds, baselines, expert_features and records read labels.csv and the
    cache through records.cache, so importing them never loads torch."""
    root = Path(__file__).resolve().parents[1]
    modules = ['folds', 'baselines', 'expert_features', 'records', 'records.cache',
               'records.uploads', 'records.formats']
    out = subprocess.run([sys.executable, str(Path(__file__).with_name('child_loaded_modules.py')),
                          *modules, '--watch', 'torch', 'dataset'],
                         capture_output=True, text=True, cwd=root, check=True,
                         env=dict(os.environ, PYTHONPATH=str(root)))
    assert out.stdout.strip() == '[]', out.stdout
