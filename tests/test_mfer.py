"""MFER (ISO 22077-1, `.mwf`) through records.read_record: files the tests
write from the standard's tag list (TLV definitions, channel attributes,
block-interleaved frames, both byte orders) read back to the samples
written; a monitor's non-ECG channels and other rates are named as ignored;
truncated and hostile files get one line naming the file."""
import struct

import numpy as np
import pytest
from helpers import tiny_checkpoint
from helpers import predict_records as run
from mfer_writer import CODES, PID, tlv, mfer_file, twelve_leads, hostile_mfer

from records import LEADS, RecordError, formats, read_record

# --------------------------------------------------------------------------
# Tests.

@pytest.mark.parametrize('big', [True, False], ids=['big-endian', 'little-endian'])
def test_a_resting_12_lead_file_round_trips(tmp_path, big):
    sig = twelve_leads()
    path = mfer_file(tmp_path / 'rest.mwf', [(CODES[lead], sig[:, k], {})
                                             for k, lead in enumerate(LEADS)], big=big)
    assert formats.sniff(path) == 'mfer'
    rec = read_record(path)
    assert rec.format == 'mfer' and rec.fs == 500 and rec.sig_len == 5000
    assert rec.leads == LEADS and rec.sig_names == LEADS and rec.ignored == []
    assert rec.units == ['uV'] * 12
    assert np.array_equal(rec.reader(0, 5000), sig * 1.25)           # uV, as stored
    assert np.array_equal(rec.read(0, 5000), sig * 1.25 * 0.001)     # mV, as every record
    assert rec.sex == 'Male' and rec.age == 61


def test_content_decides_and_identifiers_rename_the_record(tmp_path):
    """An .mwf named by its patient ID is named by its content hash; the same
    file under another extension is still read as MFER."""
    sig = twelve_leads(3000)
    chans = [(CODES[lead], sig[:, k], {}) for k, lead in enumerate(LEADS)]
    named = mfer_file(tmp_path / f'{PID}.mwf', chans)
    rec = read_record(named)
    assert rec.name.startswith('mfer-') and PID not in rec.name
    other = mfer_file(tmp_path / 'ecg.bin', chans, identifiers=False)
    assert formats.sniff(other) == 'mfer' and read_record(other).name == 'ecg'
    text = tmp_path / 'x.csv'
    text.write_text('I,II\n1,2\n')
    assert formats.sniff(text) == 'csv'


def test_a_monitor_export_keeps_its_ecg_and_names_the_rest(tmp_path):
    """II and V5 at 250 Hz beside impedance respiration, SpO2 and blood
    pressure at 125 Hz (a Nihon Kohden monitor's layout), little-endian:
    the ECG is read, the other three are named as ignored."""
    rng = np.random.default_rng(1)
    ecg = rng.integers(-800, 800, (2500, 2)).astype(np.int16)
    slow = rng.integers(0, 3000, (1250, 3)).astype(np.int16)
    at125 = {'blk': 125, 'ivl': (1, -3, 8)}
    chans = [(2, ecg[:, 0], {}), (7, ecg[:, 1], {}),
             (160, slow[:, 0], {**at125, 'sen': (11, -2, 1)}),
             (175, slow[:, 1], {**at125, 'sen': (7, -1, 1)}),
             (143, slow[:, 2], {**at125, 'sen': (1, 0, 1)})]
    path = mfer_file(tmp_path / 'monitor.mwf', chans, big=False, blk=250, ivl=(1, -3, 4),
                     sen=(0, -6, 1))
    rec = read_record(path)
    assert rec.fs == 250 and rec.sig_len == 2500 and rec.leads == ['II', 'V5']
    assert rec.ignored == ['Impedance respiration', 'SpO2', 'Blood pressure']
    assert np.array_equal(rec.reader(0, 2500), ecg.astype(np.float64))   # 1 uV a unit


def test_another_rate_is_ignored_even_for_an_ecg_channel(tmp_path):
    """An ECG channel at another rate than the others is named as ignored;
    an ECG of unknown lead (code 4166, 'ECG1') stays a channel without a lead."""
    rng = np.random.default_rng(2)
    a = rng.integers(-500, 500, (2000, 2)).astype(np.int16)
    b = rng.integers(-500, 500, 1000).astype(np.int16)
    path = mfer_file(tmp_path / 'mixed.mwf',
                     [(1, a[:, 0], {}), (4166, a[:, 1], {}),
                      (3, b, {'blk': 100, 'ivl': (1, -2, 1)})], blk=200, ivl=(1, -3, 5))
    rec = read_record(path)
    assert rec.fs == 200 and rec.sig_names == ['I', 'ECG1'] and rec.leads == ['I', None]
    assert rec.ignored == ['V1']


def test_frames_join_and_a_declared_gap_is_nan(tmp_path):
    """Three frames of one layout (a Holter's): the third's pointer (MWF_PNT)
    says it starts 1000 samples after the second ends: a gap of NaN."""
    x = np.arange(3000, dtype=np.int16) - 1500
    path = mfer_file(tmp_path / 'frames.mwf', [(2, x[:1000], {})], blk=500)
    more = tlv(0x1E, x[1000:2000].astype('>i2').tobytes()) + tlv(0x07, struct.pack('>I', 3000)) \
        + tlv(0x1E, x[2000:].astype('>i2').tobytes())
    path.write_bytes(path.read_bytes()[:-1] + more + b'\x80')
    got = read_record(path).reader(0, 4000)[:, 0]
    assert len(got) == 4000 and np.isnan(got[2000:3000]).all()
    assert np.array_equal(got[:2000], x[:2000] * 1.25)
    assert np.array_equal(got[3000:], x[2000:] * 1.25)


def test_data_types_offset_and_null_value(tmp_path):
    """int32 with an offset (physical = (stored + offset) x resolution), a
    null value read as NaN, and float32 with its own resolution."""
    x = np.arange(-1000, 1000, dtype=np.int32) * 7
    x[5] = -2 ** 31
    f = (np.arange(2000) % 50 - 25).astype(np.float32)
    path = mfer_file(tmp_path / 'types.mwf',
                     [(2, x, {'dtp': 2, 'off': -100, 'nul': -2 ** 31}),
                      (1, f, {'dtp': 7, 'sen': (0, -6, 2)})], blk=100, seq=20)
    got = read_record(path).reader(0, 2000)   # uV
    want = (x + -100) * 1.25
    assert np.isnan(got[5, 0]) and np.isfinite(np.delete(got[:, 0], 5)).all()
    assert np.array_equal(np.delete(got[:, 0], 5), np.delete(want, 5))
    assert np.array_equal(got[:, 1], f * 2.0)


def test_truncated_and_damaged_files_are_one_line(tmp_path):
    sig = twelve_leads(2000)
    chans = [(CODES[lead], sig[:, k], {}) for k, lead in enumerate(LEADS)]
    whole = mfer_file(tmp_path / 'whole.mwf', chans).read_bytes()
    (tmp_path / 'cut.mwf').write_bytes(whole[:-1000])
    with pytest.raises(RecordError, match=r'^cut: cut.mwf: truncated MFER file \(tag 0x1E '
                                          r'at byte \d+ declares 48000 bytes, 47001 are left\)$'):
        read_record(tmp_path / 'cut.mwf')
    short = mfer_file(tmp_path / 'short.mwf', chans, seq=5)   # 5 sequences declared, 4 held
    with pytest.raises(RecordError, match=r'^short: short.mwf: MFER waveform data ends early '
                                          r'\(48000 bytes, its 5 sequences need 60000\)'):
        read_record(short)
    aha = mfer_file(tmp_path / 'aha.mwf', chans, dtp=9)
    with pytest.raises(RecordError, match=r'^aha: aha.mwf: AHA-compressed MFER data'):
        read_record(aha)


def test_declared_sizes_are_refused_before_decoding(tmp_path):
    """A 2 kB file declaring 12 channels x 10^9 sequences of 500 samples is
    refused from its definitions, before anything is allocated."""
    path = hostile_mfer(tmp_path / 'huge.mwf')
    with pytest.raises(RecordError, match=r'^huge: huge.mwf: MFER file holds 6000000000000 '
                                          r'values, over the 10800000'):
        read_record(path)
    many = mfer_file(tmp_path / 'many.mwf', [(1, np.zeros(500, np.int16), {})],
                     extra=tlv(0x16, b'x') * 100_001)
    with pytest.raises(RecordError, match=r'^many: many.mwf: MFER file holds over 100000 '
                                          r'definitions'):
        read_record(many)
    chn = mfer_file(tmp_path / 'chn.mwf', [(1, np.zeros(500, np.int16), {})],
                    extra=tlv(0x05, struct.pack('>I', 100_000)))
    with pytest.raises(RecordError, match=r'^chn: chn.mwf: MFER frame holds 100000 leads'):
        read_record(chn)


def test_predict_scores_an_mfer_file(tmp_path):
    _, model = tiny_checkpoint(tmp_path, 'TINY-all-s42-f7', 5000)
    sig = twelve_leads()
    path = mfer_file(tmp_path / 'cart.mwf', [(CODES[lead], sig[:, k], {})
                                             for k, lead in enumerate(LEADS)])
    df = run(model, path, extra=['--out', str(tmp_path / 'p.csv')])
    assert df['record'].tolist() == ['cart'] and np.isfinite(df['hr']).all()
