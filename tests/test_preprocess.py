"""preprocess.py on the real records of ../shared/data, on fabricated WFDB
records (MATLAB v4 .mat written with scipy, .dat written with wfdb.wrsamp),
on a fabricated original-CPSC2018 download, and on every kind of bad input."""
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb
from helpers import ctrl_c_on_third_record, make_signal, random_labels, write_record
from scipy.signal import resample_poly

import preprocess
from dataset import load_cache, load_labels
from records import LEADS, read_record
from utils import CLASS_TO_SNOMED, CLASSES, dx_to_classes


def run(data_dir, *extra, capsys=None):
    preprocess.main(['--data-dir', str(data_dir), '--workers', '1', *extra])
    return capsys.readouterr().out if capsys else None


def cached(data_dir):
    signals, index = load_cache(data_dir)
    return {r.patient_id: np.asarray(signals[r.offset:r.offset + r.length])
            for r in index.itertuples()}


# --------------------------------------------------------------------------
# Real records.

def test_physionet2021_records_are_labelled_and_cached_as_wfdb_reads_them(shared_data, tmp_path,
                                                                          capsys):
    src = shared_data / 'physionet2021'
    data = tmp_path / 'PN'
    shutil.copytree(src, data)  # preprocess writes beside the records
    preprocess.main(['--data-dir', str(data), '--workers', '2'])
    out = capsys.readouterr().out
    headers = sorted(src.glob('*.hea'))
    assert len(headers) == 40

    reference = pd.read_csv(data / 'reference.csv', dtype={'patient_id': str, 'dx': str})
    labels = load_labels(data)
    assert reference['patient_id'].tolist() == [h.stem for h in headers]  # every record read
    assert pd.read_csv(data / 'skipped.csv').empty
    for h in headers:
        meta = wfdb.rdheader(str(h.with_suffix('')))
        comments = {c.split(':')[0].strip(): c.split(':', 1)[1].strip() for c in meta.comments}
        row = reference.set_index('patient_id').loc[h.stem]
        assert row['dx'] == comments['Dx']
        assert row['sex'] == comments['Sex']
        assert row['age'] == int(comments['Age'])
        assert (row['sample_rate'], row['signal_len']) == (meta.fs, meta.sig_len)
        classes = set(dx_to_classes(comments['Dx'].split(',')))  # the default SNR rule
        in_labels = labels['patient_id'] == h.stem
        if not classes:
            assert not in_labels.any()
            continue
        got = labels.loc[in_labels, CLASSES].iloc[0]
        assert {c for c in CLASSES if got[c] == 1} == classes

    dropped = sum(1 for h in headers if not labels['patient_id'].eq(h.stem).any())
    assert f'dropped {dropped} records with none of the nine classes' in out
    assert labels['fold'].between(1, 10).all() and labels['fold'].nunique() == 10

    signals = cached(data)
    assert sorted(signals) == sorted(labels['patient_id'])
    for name, sig in signals.items():
        ref, fields = wfdb.rdsamp(str(src / name))
        order = [fields['sig_name'].index(lead) for lead in LEADS]
        assert sig.dtype == np.int16 and sig.shape == (5000, 12)
        np.testing.assert_allclose(sig / 1000.0, ref[-15000:, order], atol=0.0005 + 1e-9)


def test_cpsc2018_record_is_cached_whole_with_its_label_and_metadata(shared_data, tmp_path, capsys):
    data = tmp_path / 'CPSC'
    shutil.copytree(shared_data / 'cpsc2018_wfdb', data)
    run(data, capsys=capsys)
    labels = load_labels(data)
    reference = pd.read_csv(data / 'reference.csv', dtype={'dx': str})
    assert labels['patient_id'].tolist() == ['A0001']
    assert labels.loc[0, CLASSES].tolist() == [int(c == 'RBBB') for c in CLASSES]
    assert reference.loc[0, ['sample_rate', 'signal_len', 'age', 'sex', 'dx']].tolist() == \
        [500, 7500, 74, 'Male', '59118001']
    sig = cached(data)['A0001']
    ref, _ = wfdb.rdsamp(str(shared_data / 'cpsc2018_wfdb' / 'A0001'))
    assert sig.shape == (7500, 12)  # 15 s, kept whole, no padding stored
    np.testing.assert_allclose(sig / 1000.0, ref, atol=0.0005 + 1e-9)


# --------------------------------------------------------------------------
# Fabricated records.

def test_long_record_keeps_last_15000_samples(tmp_path, capsys):
    sig = make_signal(20000)
    write_record(tmp_path, 'A0001', sig)
    run(tmp_path, capsys=capsys)
    np.testing.assert_array_equal(cached(tmp_path)['A0001'],
                                  np.rint(sig[-15000:] * 1000).astype(np.int16))


def test_leads_reordered_by_name_with_case_variants(tmp_path, capsys):
    sig = make_signal(3000)
    perm = np.random.default_rng(1).permutation(12)
    names = [LEADS[j].upper() if j % 2 else LEADS[j].lower() for j in perm]  # AVR, v1, ...
    write_record(tmp_path, 'A0001', np.c_[sig[:, perm], sig[:, :1]], leads=names + ['vx'])
    out = run(tmp_path, capsys=capsys)
    assert 'non-standard leads, ignored (e.g. A0001: vx)' in out
    np.testing.assert_array_equal(cached(tmp_path)['A0001'],
                                  np.rint(sig * 1000).astype(np.int16))


@pytest.mark.parametrize('fs', [1000, 257])
def test_other_rates_are_resampled(tmp_path, capsys, fs):
    n = 8 * fs
    t = np.arange(n) / fs
    sig = np.sin(2 * np.pi * 3 * t)[:, None] * np.linspace(0.5, 1.5, 12)[None, :]
    write_record(tmp_path, 'R1', sig, fs=fs, fmt='dat')
    write_record(tmp_path, 'R2', sig[:, ::-1], fs=fs, fmt='mat')
    run(tmp_path, capsys=capsys)
    reference = pd.read_csv(tmp_path / 'reference.csv')
    assert reference['sample_rate'].tolist() == [fs, fs]
    assert reference['signal_len'].tolist() == [n, n]
    signals = cached(tmp_path)
    assert signals['R1'].shape == (4000, 12)  # 8 s at 500 Hz
    expected = np.sin(2 * np.pi * 3 * np.arange(4000) / 500)[:, None] * np.linspace(0.5, 1.5, 12)
    inner = slice(250, -250)  # resample_poly's edge effects aside
    np.testing.assert_allclose(signals['R1'][inner] / 1000, expected[inner], atol=0.01)
    np.testing.assert_allclose(signals['R2'][inner] / 1000, expected[inner, ::-1], atol=0.01)
    up, down = (1, 2) if fs == 1000 else (500, 257)
    ref = resample_poly(np.rint(sig * 1000) / 1000, up, down, axis=0)
    np.testing.assert_allclose(signals['R1'] / 1000, ref, atol=0.0005 + 1e-6)


def damaged_dataset(folder):
    """Three good records and one of each kind of bad input. Returns
    {record: phrase its skip reason must contain}."""
    for i in range(3):
        write_record(folder, f'OK{i}', make_signal(2500, seed=i), dx='164889003')
    sig = make_signal(2500, seed=9)
    write_record(folder, 'TRUNC', sig)
    mat = folder / 'TRUNC.mat'
    mat.write_bytes(mat.read_bytes()[:5000])
    write_record(folder, 'CORRUPT', sig)
    (folder / 'CORRUPT.mat').write_bytes(b'\x00\x01garbage' * 50)
    write_record(folder, 'NOSIG', sig)
    (folder / 'NOSIG.mat').unlink()
    write_record(folder, 'NODX', sig, dx=None)
    # an unknown lead name is no error: the record is kept without V4
    write_record(folder, 'BADLEAD', sig, leads=LEADS[:6] + ['V1', 'V2', 'V3', 'X4', 'V5', 'V6'])
    nan = sig.copy()
    nan[100:110, 7] = np.nan
    write_record(folder, 'NAN', nan, fmt='dat')
    write_record(folder, 'EMPTY', np.zeros((0, 12)))
    flat = make_signal(2500, seed=10)
    flat[:] = 0.3  # every lead flat: no usable signal
    write_record(folder, 'FLAT', flat)
    return {'TRUNC': 'truncated signal file TRUNC.mat', 'CORRUPT': 'corrupt .mat',
            'NOSIG': 'NOSIG.mat is missing', 'NODX': 'no \'# Dx:\'',
            'NAN': 'NaN/missing samples in lead(s) V2 inside the window used',
            'EMPTY': 'zero-length record', 'FLAT': 'no usable signal: lead(s) I, II'}


def test_bad_records_are_skipped_with_one_line_each(tmp_path, capsys):
    expected = damaged_dataset(tmp_path)
    out = run(tmp_path, capsys=capsys)
    skipped = pd.read_csv(tmp_path / 'skipped.csv').set_index('patient_id')
    assert sorted(skipped.index) == sorted(expected)
    for name, phrase in expected.items():
        assert phrase in skipped.loc[name, 'reason'], (name, skipped.loc[name, 'reason'])
        lines = [line for line in out.splitlines() if line.startswith(f'skip {name}:')]
        assert len(lines) == 1 and phrase in lines[0]
    labels = load_labels(tmp_path)
    assert labels['patient_id'].tolist() == ['BADLEAD', 'OK0', 'OK1', 'OK2']
    assert labels['leads'].iloc[0] == ','.join(lead for lead in LEADS if lead != 'V4')
    assert 'note: 1 records also hold non-standard leads, ignored (e.g. BADLEAD: X4)' in out
    reference = pd.read_csv(tmp_path / 'reference.csv')
    assert reference['patient_id'].tolist() == ['BADLEAD', 'OK0', 'OK1', 'OK2']
    assert sorted(cached(tmp_path)) == ['BADLEAD', 'OK0', 'OK1', 'OK2']
    assert not cached(tmp_path)['BADLEAD'][:, LEADS.index('V4')].any()  # no V4: zeros
    for i in range(3):  # the gaps of the bad records are closed
        np.testing.assert_array_equal(
            cached(tmp_path)[f'OK{i}'], np.rint(make_signal(2500, seed=i) * 1000).astype(np.int16))


@pytest.mark.parametrize('damage', ['TRUNC', 'NODX'])
def test_strict_stops_at_the_first_bad_record(tmp_path, damage):
    write_record(tmp_path, 'OK0', make_signal(2500))
    sig = make_signal(2500, seed=1)
    if damage == 'TRUNC':
        write_record(tmp_path, 'TRUNC', sig)
        (tmp_path / 'TRUNC.mat').write_bytes((tmp_path / 'TRUNC.mat').read_bytes()[:3000])
    else:
        write_record(tmp_path, 'NODX', sig, dx=None)
    with pytest.raises(SystemExit) as e:
        preprocess.main(['--data-dir', str(tmp_path), '--workers', '1', '--strict'])
    assert e.value.code not in (0, None)
    assert str(e.value).startswith(f'error: {damage}: ')
    assert not (tmp_path / 'labels.csv').exists()
    assert not list(tmp_path.glob('**/*.tmp'))


def test_cache_rebuilt_only_when_inputs_change(tmp_path, capsys):
    for i in range(3):
        write_record(tmp_path, f'A{i}', make_signal(2000, seed=i))
    out = run(tmp_path, capsys=capsys)
    assert 'cache: 3 records' in out
    labels = (tmp_path / 'labels.csv').read_text()
    assert 'cache up to date' in run(tmp_path, capsys=capsys)
    assert (tmp_path / 'labels.csv').read_text() == labels  # identical on a rerun
    assert 'cache: 3 records' in run(tmp_path, '--force', capsys=capsys)
    write_record(tmp_path, 'A1', make_signal(3000, seed=7))  # new content, size and mtime
    assert 'cache: 3 records' in run(tmp_path, capsys=capsys)
    np.testing.assert_array_equal(cached(tmp_path)['A1'],
                                  np.rint(make_signal(3000, seed=7) * 1000).astype(np.int16))


def test_interrupted_build_leaves_nothing_half_written(tmp_path, capsys, monkeypatch):
    for i in range(4):
        write_record(tmp_path, f'A{i}', make_signal(2000, seed=i))
    run(tmp_path, capsys=capsys)
    before = {p.name: p.read_bytes() for p in tmp_path.glob('*.csv')}
    write_record(tmp_path, 'A3', make_signal(2500, seed=5))  # forces a rebuild
    ctrl_c_on_third_record(monkeypatch, lambda: run(tmp_path))
    assert not list(tmp_path.glob('**/.*.tmp'))
    assert not (tmp_path / 'cache' / 'meta.json').exists()  # the old cache is marked stale
    assert {p.name: p.read_bytes() for p in tmp_path.glob('*.csv')} == before
    assert 'cache: 4 records' in run(tmp_path, capsys=capsys)
    np.testing.assert_array_equal(cached(tmp_path)['A3'],
                                  np.rint(make_signal(2500, seed=5) * 1000).astype(np.int16))


def test_header_spelling_variants_give_the_same_metadata_and_labels(tmp_path, capsys):
    sig = make_signal(1500)  # 3 s: over records.limits.MIN_SECONDS
    write_record(tmp_path, 'HR1', sig, units='mv', age='NaN', sex='F', dx='59118001,426783006')
    write_record(tmp_path, 'HR2', sig, age='Unknown', sex='Unknown', dx='733534002')
    write_record(tmp_path, 'HR3', sig, age='47', sex='M', dx='17338001', gain=200)
    (tmp_path / 'HR3.hea').write_text((tmp_path / 'HR3.hea').read_text()
                                      .replace('# Age', '#Age').replace('# Dx', '#Dx'))
    run(tmp_path, capsys=capsys)
    ref = pd.read_csv(tmp_path / 'reference.csv', dtype={'dx': str}).set_index('patient_id')
    assert ref['sex'].tolist() == ['Female', 'Unknown', 'Male']
    assert ref['age'].isna().tolist() == [True, True, False] and ref.loc['HR3', 'age'] == 47
    labels = load_labels(tmp_path).set_index('patient_id')
    # sinus rhythm beside RBBB is not the study's SNR (--snr-rule only)
    assert labels.loc['HR1', ['SNR', 'RBBB']].tolist() == [0, 1]
    assert labels.loc['HR2', 'LBBB'] == 1 and labels.loc['HR3', 'PVC'] == 1
    assert labels[CLASSES].sum(axis=1).tolist() == [1, 1, 1]
    np.testing.assert_allclose(cached(tmp_path)['HR3'] / 1000, sig, atol=0.5 / 200 + 1e-6)


def test_empty_folder_fails_with_the_fix(tmp_path):
    with pytest.raises(SystemExit, match='no records in .*check --data-dir'):
        preprocess.main(['--data-dir', str(tmp_path)])
    with pytest.raises(SystemExit, match='is not a folder'):
        preprocess.main(['--data-dir', str(tmp_path / 'nope')])


# --------------------------------------------------------------------------
# The original CPSC2018 download.

def test_original_cpsc2018_format(tmp_path, capsys):
    numbers = {'A0001': [5], 'A0002': [1], 'A0003': [2, 7], 'A0004': [9, 8, 3]}
    rows = []
    for i, (name, labs) in enumerate(numbers.items()):
        data = make_signal(3000 + 1000 * i, seed=i).T  # (12, N) mV
        folder = tmp_path / f'TrainingSet{1 + i // 2}'
        folder.mkdir(exist_ok=True)
        scipy.io.savemat(folder / f'{name}.mat', {'ECG': {
            'sex': 'Female' if i % 2 else 'Male', 'age': 50 + i, 'data': data}})
        rows.append([name] + labs + [None] * (3 - len(labs)))
    pd.DataFrame(rows, columns=['Recording', 'First_label', 'Second_label', 'Third_label']
                 ).to_csv(tmp_path / 'TrainingSet1' / 'REFERENCE.csv', index=False)
    out = run(tmp_path, capsys=capsys)
    assert 'format cpsc2018' in out
    labels = load_labels(tmp_path).set_index('patient_id')
    ref = pd.read_csv(tmp_path / 'reference.csv', dtype={'dx': str}).set_index('patient_id')
    for i, (name, labs) in enumerate(numbers.items()):
        classes = [CLASSES[n - 1] for n in labs]  # 1 Normal (SNR) ... 9 STE
        assert [c for c in CLASSES if labels.loc[name, c]] == [c for c in CLASSES if c in classes]
        assert ref.loc[name, 'dx'] == ','.join(CLASS_TO_SNOMED[c] for c in classes)
        assert ref.loc[name, 'signal_len'] == 3000 + 1000 * i
        assert ref.loc[name, 'age'] == 50 + i
        assert ref.loc[name, 'sex'] == ('Female' if i % 2 else 'Male')
        np.testing.assert_allclose(cached(tmp_path)[name],
                                   np.rint(make_signal(3000 + 1000 * i, seed=i) * 1000), atol=1)
    rec = read_record(tmp_path / 'TrainingSet1' / 'A0001.mat')
    assert rec.signal.shape == (3000, 12) and rec.fs == 500 and rec.leads == LEADS


# --------------------------------------------------------------------------
# Folds.

def test_folds_are_stratified_and_seeded():
    y = random_labels(2000, seed=3)
    folds = preprocess.assign_folds(y, seed=42)
    assert np.array_equal(folds, preprocess.assign_folds(y, seed=42))
    assert not np.array_equal(folds, preprocess.assign_folds(y, seed=43))
    assert sorted(set(folds)) == list(range(1, 11))
    sizes = np.bincount(folds)[1:]
    # Iterative stratification balances the classes first, the sizes only roughly.
    assert np.abs(sizes - 200).max() <= 15
    per_fold = np.stack([y[folds == f].sum(0) for f in range(1, 11)])  # (10, 9)
    expected = y.sum(0) / 10
    assert np.abs(per_fold - expected).max() <= 1  # every class, every fold: within 1 of a tenth
    # An unseeded random split, for contrast, is far less even.
    rand = np.random.default_rng(0).permutation(np.arange(2000) % 10) + 1
    rand_fold = np.stack([y[rand == f].sum(0) for f in range(1, 11)])
    assert np.abs(rand_fold - expected).max() > 3 * np.abs(per_fold - expected).max()
