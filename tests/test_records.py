"""records: any lead set (aliases, limb-lead derivation), any rate, only the
tail read, the fast readers against wfdb, quality flags and RecordError, on
records written in fixtures with wfdb.wrsamp and on the real records."""
import tracemalloc

import numpy as np
import pytest
import wfdb
from helpers import ecg_like, write_record, wrsamp
from scipy.signal import resample_poly

from records import (
    LEADS,
    LIMB,
    RecordError,
    canonical_lead,
    missing_leads,
    obtainable,
    prepare,
    quantise,
    read_record,
    recorded_leads,
    to_mV,
)


def reference(record, leads, window=15000):
    """The straightforward way: read all of it, resample all of it, cut."""
    sig = wfdb.rdrecord(str(record.path.with_suffix(''))).p_signal
    cols = [record.leads.index(lead) for lead in leads]
    sig = sig[:, cols]
    if record.fs != 500:
        up, down = {300: (5, 3), 360: (25, 18), 1000: (1, 2), 257: (500, 257)}[int(record.fs)]
        sig = resample_poly(sig, up, down, axis=0)
    out = np.zeros((len(leads), window), np.float32)
    tail = to_mV(quantise(sig[-window:]).T)
    out[:, window - tail.shape[1]:] = tail
    return out


def test_lead_names_by_alias_and_case():
    assert [canonical_lead(n) for n in ['MLII', 'ml2', 'D1', 'DII', 'd3', 'AVR', 'avl',
                                        'aVF', 'v5', ' Lead  II ', 'Resp']] == \
        ['II', 'II', 'I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V5', 'II', None]
    assert obtainable(['I']) == ['I']
    assert obtainable(['D3', 'avl', 'V1']) == LEADS[:7]
    assert obtainable(['I', 'II'] + LEADS[6:]) == LEADS


def test_lead_I_only_at_300_hz(tmp_path):
    base = wrsamp(tmp_path, 'W300', ecg_like(300 * 45, 300, 1), 300, ['I'])
    rec = read_record(base)
    assert (rec.fs, rec.leads, rec.units, rec.sex, rec.dx) == (300, ['I'], ['mV'], 'Female',
                                                                ['426783006'])
    x, real, quality = prepare(rec, ['I'])
    assert x.shape == (1, 15000) and x.dtype == np.float32 and real.tolist() == [True]
    assert str(quality) == 'ok'
    np.testing.assert_allclose(x, reference(rec, ['I']), atol=1.5e-3)
    with pytest.raises(RecordError, match=r'^W300: lacks lead\(s\) II, V5 \(it has I;'):
        prepare(rec, ['I', 'II', 'V5'])
    assert missing_leads(rec, 'all') == LEADS[1:]


def test_mlii_and_v5_at_360_hz(tmp_path):
    base = wrsamp(tmp_path, 'H360', ecg_like(360 * 40, 360, 2), 360, ['MLII', 'V5'])
    rec = read_record(base)
    assert rec.leads == ['II', 'V5'] and recorded_leads(rec) == ['II', 'V5']
    x, real, _ = prepare(rec, ['V5', 'II'])
    np.testing.assert_allclose(x, reference(rec, ['V5', 'II']), atol=1.5e-3)
    assert real.tolist() == [True, True]
    short, _, _ = prepare(rec, 'II', window=4000)  # a shorter window: the same tail
    np.testing.assert_array_equal(short[0], x[1, -4000:])
    with pytest.raises(RecordError, match=r'lacks lead\(s\) I, III, aVR, aVL, aVF, V1'):
        prepare(rec, 'all')


@pytest.mark.parametrize('names', [['I', 'II'], ['D1', 'D2'], ['III', 'aVL'], ['avr', 'AVF']])
def test_limb_leads_derived_from_any_two(tmp_path, names):
    n = 500 * 12
    i_ii = ecg_like(n, 500, 2, seed=3)
    limb = np.stack([i_ii @ np.array(LIMB[lead]) for lead in LIMB], axis=1)  # the truth
    chest = ecg_like(n, 500, 6, seed=4)
    given = [canonical_lead(nm) for nm in names]
    sig = np.c_[limb[:, [list(LIMB).index(g) for g in given]], chest]
    rec = read_record(wrsamp(tmp_path, 'R8', sig, 500, names + LEADS[6:]))
    x, real, quality = prepare(rec, 'all')
    truth = np.zeros((12, 15000), np.float32)
    truth[:, -n:] = np.c_[limb, chest].T
    # 1 µV storage of the recorded leads, times coefficients of up to 2 (III
    # and aVL give I = 2 III + 2 aVL... ): within a few µV
    np.testing.assert_allclose(x, truth, atol=3.5e-3)
    assert real.tolist() == [lead in given for lead in LEADS[:6]] + [True] * 6
    assert str(quality) == 'ok'


def test_eight_lead_export_gives_twelve(tmp_path):
    sig = ecg_like(500 * 10, 500, 8, seed=5)
    rec = read_record(wrsamp(tmp_path, 'E8', sig, 500, ['I', 'II'] + LEADS[6:]))
    x, real, _ = prepare(rec, 'all')
    i, ii = x[0], x[1]
    np.testing.assert_allclose(x[2], ii - i, atol=1.1e-3)              # Einthoven
    np.testing.assert_allclose(x[3], -(i + ii) / 2, atol=1.1e-3)       # Goldberger
    np.testing.assert_allclose(x[4], i - ii / 2, atol=1.1e-3)
    np.testing.assert_allclose(x[5], ii - i / 2, atol=1.1e-3)
    assert real.tolist() == [True, True, False, False, False, False] + [True] * 6


def test_long_record_reads_only_the_tail(tmp_path):
    """40 min, 2 leads at 1 kHz: the result equals resampling everything, and
    prepare allocates a fraction of what reading the record would."""
    fs, n = 1000, 1000 * 60 * 40
    sig = ecg_like(n, fs, 2, seed=6)
    base = wrsamp(tmp_path, 'LONG', sig, fs, ['I', 'V2'])
    rec = read_record(base)
    tracemalloc.start()
    x, _, _ = prepare(rec, ['I', 'V2'])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    whole = n * 2 * 8  # the float64 signal: 38 MB
    assert peak < whole / 20, peak
    np.testing.assert_allclose(x, reference(rec, ['I', 'V2']), atol=1.5e-3)
    # any window, e.g. the 30 s ending at minute 10, as --segments reads them
    mid, _, _ = prepare(rec, ['I'], end=500 * 600)
    full = resample_poly(rec.signal[:, 0], 1, 2)
    np.testing.assert_allclose(mid[0], to_mV(quantise(full[285000:300000])), atol=1.5e-3)


@pytest.mark.parametrize('fmt', ['16', '212', 'mat'])
def test_fast_readers_match_wfdb(tmp_path, fmt):
    sig = ecg_like(5000, 500, 12, seed=7)
    if fmt == 'mat':  # the PhysioNet/CinC layout: MATLAB v4 + header by hand
        base = write_record(tmp_path, 'M1', sig, fmt='mat').with_suffix('')
    else:
        base = wrsamp(tmp_path, 'F1', sig, 500, LEADS, fmt=fmt, gain=200.0)
    rec = read_record(base)
    full = wfdb.rdrecord(str(base)).p_signal
    np.testing.assert_allclose(rec.signal, full, rtol=0, atol=1e-12)
    part = wfdb.rdrecord(str(base), sampfrom=1234, sampto=3210).p_signal
    np.testing.assert_allclose(rec.read(1234, 3210), part, rtol=0, atol=1e-12)


def test_flat_record_and_flat_lead(tmp_path):
    rng = np.random.default_rng(8)
    flat = 0.003 * rng.standard_normal((5000, 12)) + 0.2  # electrodes off: 3 µV noise
    rec = read_record(wrsamp(tmp_path, 'FLAT', flat, 500, LEADS))
    with pytest.raises(RecordError, match=r'^FLAT: no usable signal: lead\(s\) I, II, .*flat'):
        prepare(rec, 'all')
    one = ecg_like(5000, 500, 12, seed=9)
    one[:, 8] = 0.1
    rec = read_record(wrsamp(tmp_path, 'ONE', one, 500, LEADS))
    assert str(prepare(rec, 'all').quality) == 'flat V3'
    assert str(prepare(rec, ['II', 'V1']).quality) == 'ok'  # only the leads used count


def test_thousandfold_unit_error(tmp_path):
    sig = ecg_like(5000, 500, 12, seed=10) * 1000  # µV values in a header saying mV
    rec = read_record(wrsamp(tmp_path, 'UV', sig, 500, LEADS, gain=1.0))
    with pytest.raises(RecordError, match=r'^UV: implausible amplitude for an ECG in mV.*1000x'):
        prepare(rec, 'all')
    ok = read_record(wrsamp(tmp_path, 'OK', sig, 500, LEADS, units='uV', gain=1.0))
    assert str(prepare(ok, 'all').quality) == 'ok'  # the same values, stated in uV


def test_clipping_is_flagged(tmp_path):
    sig = ecg_like(5000, 500, 12, seed=11) * 3
    limit = 32767 / 10000  # the int16 ADC's limit at 10,000 units per mV
    sig[:, 1] = np.clip(sig[:, 1], -limit, limit)   # II saturates the ADC
    sig[:, 6] = np.clip(sig[:, 6], -1.0, 1.0)       # V1 hits the amplifier's rail
    sig[:, [0, 2, 3, 4, 5, 7, 8, 9, 10, 11]] /= 3
    rec = read_record(wrsamp(tmp_path, 'CLIP', sig, 500, LEADS, gain=10000.0))
    flags = prepare(rec, 'all').quality.flags
    assert [f.split()[:2] for f in flags] == [['clipped', 'II'], ['clipped', 'V1']], flags


def test_nan_inside_the_window_only(tmp_path):
    sig = ecg_like(500 * 40, 500, 2, seed=12)
    sig[1000:1010, 1] = np.nan  # in the first 10 s, outside the last 30 s
    rec = read_record(wrsamp(tmp_path, 'NAN', sig, 500, ['I', 'II']))
    x, _, quality = prepare(rec, ['I', 'II'])
    assert np.isfinite(x).all() and str(quality) == 'ok'
    np.testing.assert_allclose(x, sig[-15000:].T, atol=5.1e-4)  # the last 30 s at 500 Hz
    with pytest.raises(RecordError, match=r'^NAN: 10 NaN/missing samples in lead\(s\) II '
                                          r'inside the window used \(0\.0-4\.0 s\)'):
        prepare(rec, ['I', 'II'], end=2000)


def test_bad_files_fail_with_the_record_and_reason(tmp_path):
    sig = ecg_like(5000, 500, 2)
    base = wrsamp(tmp_path, 'T', sig, 500, ['I', 'II'])
    dat = base.with_suffix('.dat')
    dat.write_bytes(dat.read_bytes()[:9000])
    with pytest.raises(RecordError, match='^T: truncated signal file T.dat'):
        read_record(base)
    wrsamp(tmp_path, 'G', sig, 500, ['I', 'II'])
    (tmp_path / 'G.dat').unlink()
    with pytest.raises(RecordError, match='^G: signal file G.dat is missing'):
        read_record(tmp_path / 'G.hea')
    (tmp_path / 'Z.hea').write_text('Z 1 500 0\nZ.dat 16 1000/mV 16 0 0 0 0 I\n')
    with pytest.raises(RecordError, match='^Z: zero-length record'):
        read_record(tmp_path / 'Z')
    with pytest.raises(RecordError, match='^NOPE: cannot read header'):
        read_record(tmp_path / 'NOPE')
    with pytest.raises(RecordError, match='^NOPE: no such file'):
        read_record(tmp_path / 'NOPE.mat')
    wrsamp(tmp_path, 'RESP', sig, 500, ['Resp', 'Pleth'])
    with pytest.raises(RecordError, match='^RESP: no ECG lead among the signals Resp, Pleth'):
        read_record(tmp_path / 'RESP')


def test_every_real_record_reads_and_only_dead_leads_are_flagged(shared_data):
    """Every real record reads and prepares; the only flags are true ones:
    three leads of two Chapman-Shaoxing records that are exactly zero."""
    paths = sorted(shared_data.glob('*/*.hea'))
    assert len(paths) >= 50
    flagged = {}
    for hea in paths:
        rec = read_record(hea)
        prepared = prepare(rec, recorded_leads(rec))
        if not prepared.quality.ok:
            flagged[rec.name] = str(prepared.quality)
            for lead in str(prepared.quality).removeprefix('flat ').split(','):
                col = rec.signal[-15000:, rec.leads.index(lead)]
                assert np.ptp(col) == 0  # the lead really is dead
    assert flagged == {'JS20004': 'flat V2,V4,V6', 'JS20008': 'flat V2,V4,V6'}


def test_mitdb_100_as_lead_ii(shared_data):
    rec = read_record(shared_data / 'mitdb' / '100')
    assert (rec.fs, rec.sig_len, rec.sig_names, rec.leads) == (360, 650000, ['MLII', 'V5'],
                                                               ['II', 'V5'])
    assert (rec.age, rec.sex) == (69, 'Male')
    x, real, quality = prepare(rec, ['II'])
    assert real.tolist() == [True] and str(quality) == 'ok'
    full = resample_poly(rec.signal[:, 0], 25, 18)
    np.testing.assert_allclose(x[0], to_mV(quantise(full[-15000:])), atol=1.5e-3)


def test_mixed_database_preprocess_and_lead_filter(tmp_path, capsys):
    """preprocess.py on a mixed database: labels.csv says which leads each
    record has; ECGDataset keeps the records that hold or derive the leads."""
    import pandas as pd

    import preprocess
    from dataset import ECGDataset, load_labels
    data = tmp_path / 'MIX'
    wrsamp(data, 'W1', ecg_like(300 * 20, 300, 1), 300, ['I'])
    wrsamp(data, 'H2', ecg_like(360 * 40, 360, 2, seed=1), 360, ['MLII', 'V5'])
    wrsamp(data, 'E3', ecg_like(500 * 10, 500, 8, seed=2), 500, ['I', 'II'] + LEADS[6:])
    wrsamp(data, 'D4', ecg_like(500 * 10, 500, 12, seed=3), 500,
           ['D1', 'D2', 'D3', 'AVR', 'AVL', 'AVF'] + LEADS[6:])
    preprocess.main(['--data-dir', str(data), '--workers', '1'])
    labels = load_labels(data).set_index('patient_id')
    assert labels['leads'].to_dict() == {
        'D4': ','.join(LEADS), 'E3': ','.join(['I', 'II'] + LEADS[6:]), 'H2': 'II,V5', 'W1': 'I'}
    ref = pd.read_csv(data / 'reference.csv', keep_default_na=False).set_index('patient_id')
    assert ref['quality'].tolist() == ['ok'] * 4
    assert ref['sample_rate'].tolist() == [500, 500, 360, 300]
    folds = range(1, 11)
    for leads, kept in (('I', ['D4', 'E3', 'W1']), ('II', ['D4', 'E3', 'H2']),
                        ('all', ['D4', 'E3']), ('III,V5', ['D4', 'E3'])):
        ds = ECGDataset(data, folds, leads=leads)
        assert sorted(ds.patient_ids) == kept and ds.left_out == 4 - len(kept)
    ds = ECGDataset(data, folds)
    x = ds[ds.patient_ids.index('E3')][0].numpy()
    np.testing.assert_allclose(x[2], x[1] - x[0], atol=1.1e-3)  # III derived in the cache
