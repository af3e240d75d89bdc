"""SCP-ECG's variants, each in a record written from EN 1064's sections
(tests/format_writers.py): section 2's own Huffman tables, reference-beat
subtraction (sections 4 and 5) and bimodal compression; each read back
against the signal it was written from, and each damaged or hostile form
refused with one line naming the file."""
import binascii

import numpy as np
import pytest
from format_writers import (
    SCP_DEFAULT_TABLE,
    digital_12,
    scp_decimate,
    scp_differences,
    scp_huffman,
    scp_leads_section,
    scp_record,
    scp_section2,
    scp_section3,
    scp_section4,
    scp_subtract,
)

from records import RecordError, read_record

N, FS, LEADS = 5000, 500, 8
# Two tables that switch to each other: short codes for small second
# differences, escapes of 16 and 12 bits for the rest.
TABLE_1 = [(1, 1, 1, 0, '0'), (2, 2, 1, 1, '10'), (3, 3, 1, -1, '110'), (4, 20, 1, 0, '1110'),
           (5, 5, 0, 2, '11110'), (5, 5, 1, 2, '11111')]
TABLE_2 = [(2, 2, 1, 0, '00'), (2, 2, 1, -2, '01'), (2, 18, 1, 0, '10'), (3, 3, 0, 1, '110'),
           (3, 3, 1, 3, '111')]


def signal():
    """Eight leads in 2.5 uV steps (ecg_like), int64 (N, 8)."""
    return digital_12(N, FS)[:, :LEADS].astype(np.int64)


def beats():
    """(type, SB, fc, SE) per QRS, samples from 1: ecg_like's beats (0.3 s,
    then every 60/70 s), 50 samples before the fiducial to 80 after; the
    fourth beat of another type (not subtracted)."""
    fcs = [int(round((0.3 + i * 60 / 70) * FS)) + 1 for i in range(11)]
    return [(1 if i == 3 else 0, fc - 50, fc, fc + 80) for i, fc in enumerate(fcs)]


def reference_beat(seed=1):
    """Reference beat 0: 300 samples (600 ms) per lead, a QRS at its
    fiducial (sample 120) and a T wave 60 samples later (outside the
    protected zones, inside the subtraction zones), in 1.25 uV steps (even
    values: whole rhythm LSB at 2.5 uV)."""
    t = np.arange(300)[:, None]
    rng = np.random.default_rng(seed)
    qrs, wave = (rng.uniform(100, 400, (2, LEADS)) * rng.choice([-1, 1], (2, LEADS)))
    shape = np.exp(-((t - 119) / 8.0) ** 2) * qrs + np.exp(-((t - 179) / 15.0) ** 2) * wave / 2
    return 2 * np.rint(shape).astype(np.int64)


def scp_file(path, residual, beat=None, zones=(), protected=None, interval=2000, beat_ms=600,
             beat_interval=2000, bimodal=0, tables=None, trim5=0):
    """A record of the residual (rhythm, 2500 nV, second differences) and,
    with a beat, sections 4 and 5 (1250 nV, first differences; trim5 bytes
    cut from its end), coded with section 2's `tables` (section 2's body,
    the encoder; default: EN 1064's default table, 19999)."""
    code = scp_huffman if tables is None else tables[1]
    sections = {2: b'\x1fN' if tables is None else tables[0],
                3: scp_section3([N] * LEADS, flags=4 | (beat is not None)),
                6: scp_leads_section([code(scp_differences(x, 2)) for x in residual],
                                     avm=2500, interval=interval, diff=2, byte6=bimodal)}
    if beat is not None:
        sections[4] = scp_section4(beat_ms, 120, list(zones), protected)
        sections[5] = scp_leads_section([code(scp_differences(b, 1)) for b in beat.T],
                                        avm=1250, interval=beat_interval, diff=1)
        sections[5] = sections[5][:len(sections[5]) - trim5]
    return scp_record(path, sections)


def test_section2_tables_with_switches_read_exactly(tmp_path):
    """Each lead coded with two tables of section 2, switching from table 1
    to 2 a third of the way and back at two thirds; read back exactly (2.5
    uV per LSB). The default table written out in section 2 decodes as the
    19999 shorthand does (one decoder checks the other)."""
    sig = signal()
    tables = [TABLE_1, TABLE_2]
    chunks = [scp_huffman(scp_differences(x, 2), tables, {N // 3: 2, 2 * N // 3: 1})
              for x in sig.T]
    rec = read_record(scp_record(tmp_path / 'T.scp', {
        2: scp_section2(tables), 3: scp_section3([N] * LEADS),
        6: scp_leads_section(chunks, avm=2500, diff=2)}))
    np.testing.assert_allclose(rec.signal, sig * 2.5e-3, rtol=0, atol=1e-12)
    written = read_record(scp_file(tmp_path / 'D.scp', sig.T, tables=(
        scp_section2([SCP_DEFAULT_TABLE]), scp_huffman)))
    shorthand = read_record(scp_file(tmp_path / 'S.scp', sig.T))
    np.testing.assert_array_equal(written.signal, shorthand.signal)
    np.testing.assert_allclose(written.signal, sig * 2.5e-3, rtol=0, atol=1e-12)


def test_reference_beat_added_back_at_each_fiducial(tmp_path):
    """The rhythm stored as the residual after reference beat 0 (its own
    AVM, sample interval and differences) was taken from each type-0
    subtraction zone: read back exactly. The fourth beat (type 1) keeps
    its samples; a beat added one sample off would differ by far more than
    the quantisation step."""
    sig, beat, zones = signal(), reference_beat(), beats()
    residual = np.stack([scp_subtract(sig[:, j], beat[:, j], 120, zones, ratio=0.5)
                         for j in range(LEADS)], 1)
    assert np.abs(residual - sig).max() > 50    # the beat was taken away
    rec = read_record(scp_file(tmp_path / 'R.scp', residual.T, beat, zones))
    assert rec.fs == FS and rec.sig_len == N
    np.testing.assert_allclose(rec.signal, sig * 2.5e-3, rtol=0, atol=1e-12)


def test_bimodal_compression_rebuilt_to_full_rate(tmp_path):
    """A slow baseline plus reference beats: the residual outside the
    protected zones (fc - 20..fc + 30) stored at 125 Hz (factor 4, section
    6's interval over section 5's). Inside the protected zones the signal
    comes back exactly; outside, within the error of linear interpolation
    between block means: the half-block hold at each run's ends (k / 2
    samples at the steepest slope), the rounding of each mean (0.5 LSB)."""
    k, t = 4, np.arange(N) / FS
    rng = np.random.default_rng(2)
    base = np.rint(150 * np.sin(2 * np.pi * rng.uniform(0.3, 0.8, LEADS) * t[:, None]
                                + rng.uniform(0, 6, LEADS))).astype(np.int64)
    beat, zones = reference_beat(), beats()
    protected = [(fc - 20, fc + 30) for _, _, fc, _ in zones]
    sig = np.stack([-scp_subtract(-base[:, j], beat[:, j], 120, zones, ratio=0.5)
                    for j in range(LEADS)], 1)     # the beats added to the baseline
    stored = [scp_decimate(base[:, j], protected, k) for j in range(LEADS)]
    assert len(stored[0]) < N // 2
    rec = read_record(scp_file(tmp_path / 'B.scp', stored, beat, zones, protected,
                               interval=2000 * k, bimodal=1))
    assert rec.fs == FS and rec.sig_len == N
    got = rec.signal / 2.5e-3
    inside = np.zeros(N, bool)
    for qb, qe in protected:
        inside[qb - 1:qe] = True
    np.testing.assert_allclose(got[inside], sig[inside], rtol=0, atol=1e-9)
    slope = np.abs(np.diff(base, axis=0)).max()
    err = np.abs(got[~inside] - sig[~inside])
    assert err.max() <= k / 2 * slope + 0.5 + 0.1, err.max()
    assert np.sqrt((err ** 2).mean()) < 1.0


def hostile(tmp_path, case):
    """The record of each hostile case (a valid subtraction record otherwise)."""
    sig, beat, zones = signal(), reference_beat(), beats()
    residual = np.stack([scp_subtract(sig[:, j], beat[:, j], 120, zones, ratio=0.5)
                         for j in range(LEADS)], 1).T
    path = tmp_path / f'{case}.scp'
    loop = [(1, 1, 0, 1, '1')]                     # '1': switch to table 1, itself
    tables = {'table_loops': (scp_section2([loop]), lambda x: b'\xff' * len(x)),
              'no_code': (scp_section2([loop + [(2, 2, 1, 0, '01')]]),
                          lambda x: b'\x00' * len(x)),
              'tables_count': (b'\x2c\x01\x05\x00', scp_huffman),   # 300 tables in 4 bytes
              'switch_nowhere': (scp_section2([[(1, 1, 0, 9, '1'), (1, 1, 1, 0, '0')]]),
                                 scp_huffman)}
    if case in tables:
        return scp_file(path, residual, tables=tables[case])
    if case == 'zone_outside':
        zones[-1] = (0, N - 60, N - 10, N + 1000)
    every = {'decimation_0.5': (1000, 2000), 'decimation_30000': (60_000, 2),
             'decimation_1.5': (3000, 2000), 'decimation_0': (8000, 0)}
    if case in every:
        return scp_file(path, residual, beat, zones, [(1, 2)], interval=every[case][0],
                        beat_interval=every[case][1], bimodal=1)
    options = {'beat_longer': {'beat_ms': 200}, 'two_rates': {'beat_interval': 1000},
               'beat_bytes': {'trim5': 40}}.get(case, {})
    path = scp_file(path, residual, beat, zones, **options)
    if case == 'qrs_count':   # section 4 declares 65535 QRS complexes
        data = path.read_bytes()
        head = scp_section4(600, 120, zones)[:6]
        assert data.count(head) == 1
        data = data.replace(head, head[:4] + b'\xff\xff')
        path.write_bytes(binascii.crc_hqx(data[2:], 0xFFFF).to_bytes(2, 'little') + data[2:])
    return path


HOSTILE = {
    'table_loops': r'SCP-ECG lead 1 data ends early \(0 of 5000 samples\)',
    'no_code': r'SCP-ECG lead 1: the bits at 0 match no code of Huffman table 1',
    'tables_count': r'SCP-ECG section 2 declares 300 Huffman tables that its 4 bytes do not hold',
    'switch_nowhere': r'SCP-ECG Huffman table 1 has a code of 1 prefix bits, 1 bits, mode 0, '
                      r'base 9 that EN 1064 does not define',
    'zone_outside': r'SCP-ECG subtraction zone 11 \(samples 4940..6000\) lies outside the '
                    r'signal \(samples 1..5000\)',
    'beat_longer': r'SCP-ECG lead 1: subtraction zone 1 needs reference-beat samples 70..200, '
                   r'and section 4 declares a beat of 100',
    'beat_bytes': r'SCP-ECG section 5 declares \d+ bytes of lead data and holds \d+',
    'two_rates': r'SCP-ECG reference beat sampled every 1000 us, the rhythm every 2000 us',
    'decimation_0': r'SCP-ECG bimodal compression with a decimation factor of 0 ',
    'decimation_0.5': r'SCP-ECG bimodal compression with a decimation factor of 0.5 ',
    'decimation_1.5': r'SCP-ECG bimodal compression with a decimation factor of 1.5 ',
    'decimation_30000': r'SCP-ECG bimodal compression with a decimation factor of 30000 ',
    'qrs_count': r'SCP-ECG section 4 declares 65535 QRS complexes in \d+ bytes',
}


@pytest.mark.parametrize('case', HOSTILE)
def test_hostile_variants_refused_with_one_line(tmp_path, case):
    """Each damaged or hostile variant: one RecordError line naming the file
    and the reason; every loop ends with the data and every count is checked
    against the bytes present, so none takes long or allocates much."""
    path = hostile(tmp_path, case)
    with pytest.raises(RecordError, match=rf'^{case}: {case}\.scp: {HOSTILE[case]}') as e:
        read_record(path)
    assert '\n' not in str(e.value)
