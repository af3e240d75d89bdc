"""Hostile records and uploads: one test per defect, each named after it, on
files written here; the sections are numbered as the defects in
docs/hostile.md, whose table names each defect's tests. Peak memory and time
of the hostile files are measured in a child process
(tests/child_hostile_files.py: a fork per file of a runner that has numpy,
scipy and wfdb imported, so each figure is the file's own cost on top of
that base):

    OMP_NUM_THREADS=1 .venv/bin/python -m pytest -q tests/test_hostile.py -s -k memory

prints one line per file: peak RSS (MB) and seconds.
"""
import base64
import io
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import wfdb
from format_writers import scp_huffman, scp_leads_section, scp_record, scp_section3
from helpers import make_signal, tiny_checkpoint, write_record
from mfer_writer import hostile_mfer, mfer_file
from web_helpers import errors, lying_zip, record_files, upload

import predict
import preprocess
from records import (
    LEADS,
    RecordError,
    check_quality,
    mat_check,
    prepare,
    read_header,
    read_record,
    uploads,
)

ROOT = Path(__file__).resolve().parents[1]
GB = 1024  # MB


# --------------------------------------------------------------------------
# Writers of hostile files.

def good_record(folder, name='GOOD', seconds=4):
    return write_record(folder, name, make_signal(500 * seconds, seed=1))


def header(folder, name, signal_lines, fs=500, n=2000, comments=()):
    lines = [f'{name} {len(signal_lines)} {fs} {n}'] + list(signal_lines) + \
        [f'# {c}' for c in comments]
    path = folder / f'{name}.hea'
    path.write_text('\n'.join(lines) + '\n')
    return path


def _raw_piece(data):
    """Raw deflate of `data`, byte-aligned and not final, with no reference
    outside itself: such pieces concatenate into one valid stream."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_FULL_FLUSH)


def deflate_zeros(prefix, nzeros, block=10 ** 7):
    """(raw deflate of prefix + nzeros zero bytes, its adler32, its crc32),
    in ~0.1 s for 300 MB: one compressed 10-MB block, repeated."""
    zeros = bytes(block)
    body = [_raw_piece(prefix), _raw_piece(zeros) * (nzeros // block),
            _raw_piece(bytes(nzeros % block)), zlib.compressobj(1, zlib.DEFLATED, -15).flush()]
    adler, crc = zlib.adler32(prefix), zlib.crc32(prefix)
    for _ in range(nzeros // block):
        adler, crc = zlib.adler32(zeros, adler), zlib.crc32(zeros, crc)
    adler = zlib.adler32(bytes(nzeros % block), adler)
    crc = zlib.crc32(bytes(nzeros % block), crc)
    return b''.join(body), adler, crc


MAT5_HEAD = b'MATLAB 5.0 MAT-file, written by test_hostile.py'.ljust(116) + bytes(8) \
    + struct.pack('<H', 0x0100) + b'IM'


def _el(mtype, data):
    return struct.pack('<II', mtype, len(data)) + data + bytes(-len(data) % 8)


def _matrix_head(cls, dims, name, content_len, flags=0):
    """miMATRIX tag, array flags, dims and name; content_len: bytes after them."""
    body = _el(6, struct.pack('<II', cls | flags, 0)) + \
        _el(5, struct.pack(f'<{len(dims)}i', *dims)) + _el(1, name)
    return struct.pack('<II', 14, len(body) + content_len) + body


def _compressed(element_raw_deflate, adler):
    data = b'\x78\x01' + element_raw_deflate + struct.pack('>I', adler)
    return struct.pack('<II', 15, len(data)) + data


def nested_cells_mat(path, depth=20_000):
    """A v5 .mat `ECG` of cells nested `depth` deep around one double (~40 kB
    compressed): scipy.io.loadmat recurses in C until the stack overflows."""
    leaf = _matrix_head(6, [1, 1], b'', 16) + _el(9, struct.pack('<d', 1.0))
    heads, inner = [], len(leaf)
    for level in range(depth):
        name = b'ECG' if level == depth - 1 else b''
        head = _matrix_head(1, [1, 1], name, inner)
        heads.append(head)
        inner += len(head)
    element = b''.join(reversed(heads)) + leaf
    raw = _raw_piece(element) + zlib.compressobj(1, zlib.DEFLATED, -15).flush()
    path.write_bytes(MAT5_HEAD + _compressed(raw, zlib.adler32(element)))
    return path


def big_int8_struct_mat(path, n=25_000_000):
    """A compressed v5 .mat (~300 kB) of struct ECG with data int8 12 x n: the
    CPSC2018 layout, 2.7 GB once scipy's matrix is made float64."""
    nbytes = 12 * n
    data_head = _matrix_head(8, [12, n], b'data', 8 + nbytes + (-nbytes % 8))
    fields = struct.pack('<I', (4 << 16) | 5) + struct.pack('<i', 8) + _el(1, b'data'.ljust(8,
                                                                                      b'\0'))
    struct_len = len(fields) + len(data_head) + 8 + nbytes
    prefix = _matrix_head(2, [1, 1], b'ECG', struct_len) + fields + data_head + \
        struct.pack('<II', 1, nbytes)
    raw, adler, _ = deflate_zeros(prefix, nbytes)
    path.write_bytes(MAT5_HEAD + _compressed(raw, adler))
    return path


def zip_bytes(members):
    """A zip written by hand, so members can be what zipfile refuses to write:
    members = [(name bytes, data bytes or (raw deflate, crc, size)), flags,
    method, crc or None (= right)]."""
    out, central = io.BytesIO(), []
    for name, data, flags, method, crc in members:
        if isinstance(data, tuple):
            body, right, size = data
        else:
            body, right, size = data, zlib.crc32(data), len(data)
            if method == 8:
                body = _raw_piece(data) + zlib.compressobj(1, zlib.DEFLATED, -15).flush()
        crc = right if crc is None else crc
        offset = out.tell()
        out.write(struct.pack('<4s5H3L2H', b'PK\x03\x04', 20, flags, method, 0, 33,
                              crc, len(body), size, len(name), 0) + name + body)
        central.append(struct.pack('<4s6H3L5H2L', b'PK\x01\x02', 20, 20, flags, method, 0, 33,
                                   crc, len(body), size, len(name), 0, 0, 0, 0, 0, offset)
                       + name)
    start = out.tell()
    cd = b''.join(central)
    out.write(cd + struct.pack('<4s4H2LH', b'PK\x05\x06', 0, 0, len(members), len(members),
                               len(cd), start, 0))
    return out.getvalue()


def member(name, data, flags=0, method=0, crc=None):
    return (name.encode() if isinstance(name, str) else name, data, flags, method, crc)


# --------------------------------------------------------------------------
# Memory and time in a child process.

def in_children(cases):
    """{name: [kind, *arguments]} -> {name: {result, seconds, rss_mb, status}},
    each case run in its own forked child of tests/child_hostile_files.py (a
    crash there is status != 0)."""
    done = subprocess.run([sys.executable, str(Path(__file__).with_name('child_hostile_files.py')),
                           json.dumps(cases)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT)))
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def hostile(tmp_path_factory):
    """The hostile files of docs/hostile.md that need the memory test, written once."""
    d = tmp_path_factory.mktemp('hostile')
    files = {'nested_mat': nested_cells_mat(d / 'NEST.mat'),
             'int8_struct_mat': big_int8_struct_mat(d / 'BIG8.mat')}
    (d / 'NESTH.mat').write_bytes((d / 'NEST.mat').read_bytes())
    files['nested_mat_with_header'] = header(d, 'NESTH', ['NESTH.mat 16 1000/mV 16 0 0 0 0 I'])
    (d / 'SKEW.dat').write_bytes(bytes(4))
    files['skew_600M'] = header(d, 'SKEW', ['SKEW.dat 80:600000000 200 8 0 0 0 0 II'], n=2)
    (d / 'LONG.dat').write_bytes(bytes(3000))
    files['length_1e12'] = header(d, 'LONG', ['LONG.dat 212 200 12 0 0 0 0 II'],
                                  n=10 ** 12)
    files['header_10MB_line'] = d / 'WIDE.hea'
    files['header_10MB_line'].write_text('WIDE 1 500 ' + 'x' * 10 * 2 ** 20 + '\n')
    zips, big = [], deflate_zeros(b'', 50 * 2 ** 20)
    for k in range(4):  # 4 zips of 2 x 50 MB zeros: 400 MB declared, ~100 kB sent
        zips.append((f'z{k}.zip', zip_bytes([member(f'm{k}{j}.dat', (big[0], big[2],
                                                                       50 * 2 ** 20),
                                                    method=8) for j in range(2)])))
    zdir = d / 'zips'
    zdir.mkdir()
    for n, b in zips:
        (zdir / n).write_bytes(b)
    files['four_zips'] = zdir
    return files


def test_memory_and_time_of_each_hostile_file(hostile, hostile_formats, tmp_path):
    """Each hostile file is refused with a RecordError (or an upload's problem
    lines) in its own child: no crash, under 1 GB, the nested .mat < 1 s; each
    hospital reader's (section 7) in one line naming the file, within 400 MB
    of a good record's peak and under 5 s."""
    f = {k: str(v) for k, v in hostile.items()}
    read = ('nested_mat', 'nested_mat_with_header', 'int8_struct_mat', 'skew_600M',
            'length_1e12', 'header_10MB_line')
    good = tmp_path / 'GOODMUSE.xml'
    muse_12(good)
    lying = tmp_path / 'lying'  # a zip directory of 200,000 entries whose end claims 1
    lying.mkdir()
    (lying / 'lying.zip').write_bytes(lying_zip(200_000))
    cases = {'base (imports only)': ['imports'], **{key: ['read', f[key]] for key in read},
             'four_zips': ['stage', f['four_zips'], str(tmp_path)],
             'zip_directory_lying': ['stage', str(lying), str(tmp_path)],
             'good MUSE record': ['read', str(good)],
             **{key: ['read', str(path)] for key, path in hostile_formats.items()}}
    got = in_children(cases)
    for name, r in got.items():
        print(f"{name:24s} peak {r['rss_mb']:6.0f} MB  {r['seconds']:.3f} s  {r['result'][:90]}")
    for name, r in got.items():
        assert r['status'] == 0, (name, r)
        assert r['rss_mb'] < GB, (name, r)
    for name in read:
        assert got[name]['result'].startswith('RecordError'), (name, got[name])
    assert 'nested more than 2 deep' in got['nested_mat']['result']
    assert 'nested more than 2 deep' in got['nested_mat_with_header']['result']
    assert got['nested_mat']['seconds'] < 1 and got['nested_mat_with_header']['seconds'] < 1
    assert 'values declared' in got['int8_struct_mat']['result']
    assert 'beyond the record' in got['skew_600M']['result']
    assert 'truncated' in got['length_1e12']['result']
    # one budget for the request: 4 of the 8 members of 50 MB (200 MB), not 400 MB
    assert got['four_zips']['result'] == f'ok: 4 staged, {200 * 2 ** 20} bytes, 4 problems'
    base = got['good MUSE record']
    assert base['result'] == 'ok', base
    zipdir = got['zip_directory_lying']
    assert zipdir['result'] == 'ok: 0 staged, 0 bytes, 1 problems', zipdir
    assert zipdir['rss_mb'] < base['rss_mb'] + 400 and zipdir['seconds'] < 5, zipdir
    for name, path in hostile_formats.items():
        r = got[name]
        assert r['result'].startswith('RecordError: '), (name, r)
        assert path.stem in r['result'] and '\n' not in r['result'], (name, r)
        assert r['rss_mb'] < base['rss_mb'] + 400 and r['seconds'] < 5, (name, r)


# --------------------------------------------------------------------------
# 1. Files outside the upload or the record's folder.

def test_case_twin_header_does_not_open_the_other_twin(tmp_path):
    good_record(tmp_path, 'x')
    (tmp_path / 'x.HEA').write_text('')  # x.HEA empty; x.hea is a good record
    with pytest.raises(RecordError, match='^x: empty header'):
        read_record(tmp_path / 'x.HEA')   # the file given, not x.hea
    assert read_record(tmp_path / 'x.hea').sig_len == 2000
    # wfdb (format 212) opens NAME.hea itself: a different y.hea is refused, not read
    wfdb.wrsamp('y', fs=500, units=['mV'], sig_name=['II'], fmt=['212'], adc_gain=[200.0],
                baseline=[0], p_signal=make_signal(1000, nleads=1), write_dir=str(tmp_path))
    (tmp_path / 'y.hea').rename(tmp_path / 'y.HEA')
    header(tmp_path, 'y', ['other.dat 212 200/mV 12 0 0 0 0 II'])
    (tmp_path / 'other.dat').write_bytes(bytes(3000))
    with pytest.raises(RecordError, match='^y: y.HEA: wfdb reads y.hea, which is another file'):
        read_record(tmp_path / 'y.HEA')


def test_case_twin_upload_is_refused_in_the_app(at):
    """x.HEA (empty) and x.hea naming /etc/passwd: both refused, in one line
    each; the good record of the same upload is diagnosed."""
    evil = b'x 1 500 1000\n/etc/passwd 16+64 1000/mV 16 0 0 0 0 II\n'
    files = list(record_files('GOOD').values()) + [('x.HEA', b''), ('x.hea', evil)]
    upload(at, files)
    lines = errors(at)
    assert len(lines) == 2 and all('differ' in e for e in lines), lines
    assert any('GOOD' in h.value for h in at.header)
    assert not any(h.value.startswith('x') for h in at.header)  # no record x: nothing read


@pytest.mark.parametrize('where', ['absolute', 'dotdot', 'symlink'])
def test_signal_file_outside_the_folder_is_refused(tmp_path, where):
    outside = tmp_path / 'secret'
    outside.mkdir()
    np.int16(np.arange(4000) % 200).tofile(outside / 's.dat')
    rec = tmp_path / 'rec'
    rec.mkdir()
    name = {'absolute': str(outside / 's.dat'), 'dotdot': '../secret/s.dat', 'symlink': 'l.dat'}
    if where == 'symlink':
        (rec / 'l.dat').symlink_to(outside / 's.dat')
    hea = header(rec, 'R', [f'{name[where]} 16 1000/mV 16 0 0 0 0 II'])
    with pytest.raises(RecordError, match="resolves outside the record's folder.*"
                                          '--allow-outside-folder'):
        read_record(hea)
    with pytest.raises(RecordError, match='outside'):
        read_header(hea)
    assert read_record(hea, allow_outside=True).sig_len == 2000  # the user's own choice


def test_predict_and_preprocess_skip_outside_files_unless_allowed(tiny_root, tmp_path,
                                                                  capsys):
    data = tmp_path / 'DB'
    good_record(data, 'A1')
    np.int16(make_signal(2000, nleads=1)[:, 0] * 1000).tofile(tmp_path / 'out.dat')
    header(data, 'A2', [f'{tmp_path / "out.dat"} 16 1000/mV 16 0 0 0 0 II'],
           comments=['Dx: 426783006'])
    model = next(tiny_root.glob('models/*/best.pt'))
    out = tmp_path / 'p.csv'
    predict.main(['--model-path', str(model), '--root', str(tiny_root), '--device', 'cpu',
                  '--records', str(data), '--out', str(out)])
    assert list(pd.read_csv(out)['record']) == ['A1']
    assert "A2: signal file out.dat resolves outside the record's folder" in \
        capsys.readouterr().err
    preprocess.main(['--data-dir', str(data), '--workers', '1'])
    skipped = pd.read_csv(data / 'skipped.csv')
    assert list(skipped['patient_id']) == ['A2'] and 'outside' in skipped['reason'][0]
    preprocess.main(['--data-dir', str(data), '--workers', '1', '--allow-outside-folder'])
    assert len(pd.read_csv(data / 'skipped.csv')) == 0
    assert sorted(pd.read_csv(data / 'reference.csv')['patient_id']) == ['A1', 'A2']


# --------------------------------------------------------------------------
# 2-3. Recursion and allocation a file controls.

def test_nested_cell_mat_is_refused_before_scipy(hostile):
    with pytest.raises(RecordError, match='^NEST: .mat layout refused: cells or structs '
                                          'nested more than 2 deep'):
        read_record(hostile['nested_mat'])
    assert hostile['nested_mat'].stat().st_size < 60_000


def test_int8_struct_mat_declared_size_is_refused_before_loading(hostile, tmp_path):
    assert hostile['int8_struct_mat'].stat().st_size < 400_000
    with pytest.raises(RecordError, match=r'^BIG8: .mat layout refused: 300000000 values'):
        read_record(hostile['int8_struct_mat'])
    # dims of 1 x 1 and a data element larger than that: scipy reads the element whole
    (tmp_path / 'D.mat').write_bytes(MAT5_HEAD + _matrix_head(6, [1, 1], b'val', 8 + 800)
                                     + _el(9, bytes(800)))
    with pytest.raises(RecordError, match='^D: .mat layout refused: 800 bytes of data for 1'):
        mat_check(tmp_path / 'D.mat', 'D')


def test_flat_mat_layouts_still_read(tmp_path):
    """The layouts read here pass the walk: CPSC2018's struct (compressed or
    not), a header's v5 `val`."""
    sig = make_signal(1000, seed=3).T
    for compress in (True, False):
        scipy.io.savemat(tmp_path / 'A1.mat', {'ECG': {'sex': 'Male', 'age': 61.0,
                                                       'data': sig}},
                         do_compression=compress)
        rec = read_record(tmp_path / 'A1.mat')
        assert (rec.sex, rec.age, rec.sig_len) == ('Male', 61, 1000)
        np.testing.assert_allclose(rec.signal, sig.T)
    scipy.io.savemat(tmp_path / 'V.mat', {'val': np.int16(sig * 1000)}, do_compression=True)
    header(tmp_path, 'V', [f'V.mat 16 1000/mV 16 0 0 0 0 {lead}' for lead in LEADS], n=1000)
    np.testing.assert_allclose(read_record(tmp_path / 'V').signal, np.int16(sig.T * 1000) / 1000)
    assert mat_check(tmp_path / 'V.mat', 'V') == 12 * 1000


def test_skew_beyond_the_record_is_refused(hostile):
    with pytest.raises(RecordError, match="^SKEW: skew 600000000 of signal SKEW.dat is beyond "
                                          "the record's 2 samples"):
        read_record(hostile['skew_600M'])


def test_skew_is_honoured_in_the_memory_mapped_reader(tmp_path):
    sig = np.int16(make_signal(3000, nleads=2, seed=4) * 1000)
    sig.tofile(tmp_path / 'K.dat')
    hea = header(tmp_path, 'K', ['K.dat 16 1000/mV 16 0 0 0 0 I',
                                 'K.dat 16:7 1000/mV 16 0 0 0 0 II'], n=3000)
    theirs = wfdb.rdrecord(str(tmp_path / 'K')).p_signal
    rec = read_record(hea)
    np.testing.assert_array_equal(rec.read(100, 2500), theirs[100:2500])
    np.testing.assert_array_equal(rec.signal, theirs)   # NaN where the skew runs out
    assert np.isnan(rec.signal[-7:, 1]).all() and np.isfinite(rec.signal[:-7]).all()


def test_huge_declared_length_is_refused(hostile, tmp_path):
    with pytest.raises(RecordError, match='^LONG: truncated signal file LONG.dat: 3000 bytes'):
        read_record(hostile['length_1e12'])
    (tmp_path / 'L16.dat').write_bytes(bytes(100))
    hea = header(tmp_path, 'L16', ['L16.dat 16 1000/mV 16 0 0 0 0 II'], n=2 ** 62)
    with pytest.raises(RecordError, match='^L16: truncated signal file'):
        read_record(hea)


def test_a_window_needing_too_many_values_is_refused(tmp_path):
    with open(tmp_path / 'F.dat', 'wb') as f:  # sparse: 100 MB that take no disk
        f.truncate(2 * 256 * 200_000)
    hea = header(tmp_path, 'F', ['F.dat 16 1000/mV 16 0 0 0 0 II'] * 256, fs=200_000,
                 n=200_000)
    with pytest.raises(RecordError, match='over the 16777216 values read at once'):
        prepare(read_record(hea), ['II'])


# --------------------------------------------------------------------------
# 4. One bad zip member sinks nothing else.

def test_bad_zip_members_are_one_line_each_and_the_rest_goes_on():
    good = record_files('GOOD')
    other = record_files('OTHER')
    z = zip_bytes([member(*good['hea']), member(*good['mat'], method=8),
                   member('enc.hea', b'x', flags=0x1),
                   member('aes.hea', b'x', method=99),
                   member(b'bad\xff\xfe.hea', b'x', flags=0x800),
                   member('crc.hea', b'xyz' * 100, crc=1234),
                   member('../up.hea', b'x'), member('/abs.hea', b'x')])
    records, problems = uploads.load_uploads([('batch.zip', z), *other.values()],
                                             list(LEADS), 1000)
    assert sorted(r.name for r in records) == ['GOOD', 'OTHER']
    reasons = dict(problems)
    assert len(problems) == 6, problems
    assert reasons['batch.zip/enc.hea'] == 'encrypted; upload it unencrypted'
    assert reasons['batch.zip/aes.hea'] == 'unknown compression method 99'
    assert 'not valid UTF-8' in next(v for k, v in problems if 'bad' in k)
    assert reasons['batch.zip/crc.hea'].startswith('corrupt member (BadZipFile: Bad CRC-32')
    assert reasons['batch.zip/../up.hea'] == reasons['batch.zip//abs.hea'] == \
        'an absolute or ../ path inside the zip; refused'


def test_upload_budget_is_per_request_not_per_zip(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, 'MAX_UPLOAD_BYTES', 3000)
    monkeypatch.setattr(uploads, 'MAX_MEMBERS', 5)
    zips = [(f'z{k}.zip', zip_bytes([member(f'f{k}{j}.txt', bytes(500), method=8)
                                     for j in range(2)])) for k in range(4)]
    staged, problems = uploads.stage_files(zips, tmp_path)
    assert sorted(staged) == ['f00.txt', 'f01.txt', 'f10.txt', 'f11.txt', 'f20.txt']
    assert len(problems) == 3 and all('size limit' in why for _, why in problems)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) == 2500


def test_case_twins_in_zips_and_files_are_both_refused(tmp_path):
    z = zip_bytes([member('a/R.hea', b'R 1 500 10\n'), member('b/r.HEA', b'x')])
    staged, problems = uploads.stage_files([('z.zip', z), ('R.Hea', b'y'), ('k.dat', b'1')],
                                           tmp_path)
    assert list(staged) == ['k.dat'] and len(problems) == 3
    assert [p.name for p in tmp_path.iterdir()] == ['k.dat']


def test_app_state_changes_only_after_a_successful_read(at, monkeypatch):
    upload(at, record_files('FIRST').values())
    before = at.session_state['batch']

    def broken(*a, **k):
        raise MemoryError('simulated')
    monkeypatch.setattr(uploads, 'load_uploads', broken)
    upload(at, record_files('SECOND').values())
    assert at.session_state['batch'] == before   # not the new batch with the old records
    assert any('unreadable upload (MemoryError)' in e for e in errors(at))
    assert not any('FIRST' in h.value for h in at.header)


def test_streamlit_shows_no_stack_traces():
    text = (ROOT / '.streamlit' / 'config.toml').read_text()
    assert 'showErrorDetails = "none"' in text


# --------------------------------------------------------------------------
# 5. Every failure is a RecordError; the run goes on.

@pytest.mark.parametrize('line,n,why', [
    ('B.dat 16+-4 1000/mV 16 0 0 0 0 II', 2000, 'malformed signal line'),
    ('B.dat 16 1000/mV 16 0 0 0 0 II', -2000, 'negative signal length -2000'),
    ('B.dat 16 nan/mV 16 0 0 0 0 II', 2000, 'gain nan of signal B.dat is not finite'),
    ('B.dat 16 1000/mV 16 0 0 0 0 II', 2000, 'sampling rate 0.0001 Hz is outside'),
    ('B.dat 999 1000/mV 16 0 0 0 0 II', 2000, 'unknown signal format 999')])
def test_overflowing_offset_and_negative_length_are_record_errors(tmp_path, line, n, why):
    (tmp_path / 'B.dat').write_bytes(bytes(8000))
    hea = header(tmp_path, 'B', [line], fs=0.0001 if 'rate' in why else 500, n=n)
    with pytest.raises(RecordError, match='^B: ' + why):
        read_record(hea)


def test_predict_keeps_the_good_records_of_a_run(tiny_root, tmp_path, capsys):
    good_record(tmp_path, 'OK1')
    (tmp_path / 'B.dat').write_bytes(bytes(8000))
    header(tmp_path, 'BAD1', ['B.dat 16+-4 1000/mV 16 0 0 0 0 II'])
    header(tmp_path, 'BAD2', ['B.dat 16 1000/mV 16 0 0 0 0 II'], n=-5)
    nested_cells_mat(tmp_path / 'BAD3.mat', depth=50)
    out = tmp_path / 'p.csv'
    model = next(tiny_root.glob('models/*/best.pt'))
    predict.main(['--model-path', str(model), '--root', str(tiny_root), '--device', 'cpu',
                  '--records', str(tmp_path), '--out', str(out)])
    assert list(pd.read_csv(out)['record']) == ['OK1']
    err = capsys.readouterr().err
    assert all(f'skipped BAD{i}' in err for i in (1, 2, 3)), err


def test_header_line_of_10_mb_is_cut_in_the_message(hostile, tmp_path):
    with pytest.raises(RecordError) as e:
        read_record(hostile['header_10MB_line'])
    assert len(str(e.value)) < 400 and 'over the 1048576' in str(e.value)
    (tmp_path / 'W.hea').write_text('W 1 500 ' + 'y' * 900_000 + '\n')
    with pytest.raises(RecordError, match=r"^W: malformed record line 'W 1 500 yyy.*"
                                          r'\(900\d\d\d characters\)$') as e:
        read_record(tmp_path / 'W.hea')
    assert len(str(e.value)) < 400


# --------------------------------------------------------------------------
# 6. Silent wrong results.

def test_format_8_read_from_the_record_start(tmp_path):
    """A drifting signal in format 8 (differences): any window equals wfdb's
    read of the whole record, and no false clipping is flagged."""
    n, fs = 500 * 40, 500
    t = np.arange(n) / fs
    values = np.rint(400 * np.sin(2 * np.pi * 0.05 * t) + 150 * np.sin(2 * np.pi * 1.2 * t)
                     ).astype(np.int64)
    init = int(values[0])
    diffs = np.diff(values, prepend=init).astype(np.int8)
    assert np.abs(np.diff(values, prepend=init)).max() < 127
    diffs.tofile(tmp_path / 'D.dat')
    hea = header(tmp_path, 'D', [f'D.dat 8 200/mV 8 0 {init} 0 0 II'], n=n)
    whole = wfdb.rdrecord(str(tmp_path / 'D')).p_signal
    rec = read_record(hea)
    np.testing.assert_allclose(rec.read(5000, 6000), whole[5000:6000], atol=1e-12)
    np.testing.assert_allclose(rec.read(n - 15000, n), whole[-15000:], atol=1e-12)
    x, _, quality = prepare(rec, ['II'])
    np.testing.assert_allclose(x[0], whole[-15000:, 0], atol=6e-4)
    assert str(quality) == 'ok'


def write_mat4(path, matrix, imag=None):
    """MATLAB v4, float64, little-endian (type 0000; imagf set with imag)."""
    rows, cols = matrix.shape
    head = struct.pack('<5i', 0, rows, cols, int(imag is not None), 4) + b'val\0'
    data = np.asarray(matrix, '<f8').tobytes(order='F')
    if imag is not None:
        data += np.asarray(imag, '<f8').tobytes(order='F')
    path.write_bytes(head + data)


def test_infinite_samples_are_flagged_like_nan(tmp_path):
    sig = make_signal(3000, nleads=1, seed=6)[:, 0]
    sig[2500] = np.inf
    write_mat4(tmp_path / 'I.mat', sig[None, :])
    hea = header(tmp_path, 'I', ['I.mat 16x1+24 1/mV 16 0 0 0 0 II'], n=3000)
    with pytest.raises(RecordError, match=r'^I: 1 NaN/missing or infinite samples in lead\(s\) '
                                          'II inside the window used'):
        prepare(read_record(hea), ['II'])


def test_complex_mat_data_is_refused(tmp_path):
    sig = make_signal(1000, seed=7).T
    scipy.io.savemat(tmp_path / 'C.mat', {'ECG': {'data': sig + 1j}})
    with pytest.raises(RecordError, match='^C: the .mat holds complex data'):
        read_record(tmp_path / 'C.mat')
    scipy.io.savemat(tmp_path / 'V.mat', {'val': sig + 1j})
    header(tmp_path, 'V', [f'V.mat 16 1/mV 16 0 0 0 0 {lead}' for lead in LEADS], n=1000)
    with pytest.raises(RecordError, match='^V: the .mat holds complex data'):
        read_record(tmp_path / 'V').read(0, 10)
    write_mat4(tmp_path / 'W.mat', sig, imag=sig)
    header(tmp_path, 'W', [f'W.mat 16x1+24 1/mV 16 0 0 0 0 {lead}' for lead in LEADS], n=1000)
    with pytest.raises(RecordError, match='^W: W.mat holds complex data'):
        read_record(tmp_path / 'W')


def test_negative_gain_is_handled_not_clipped(tmp_path):
    sig = np.int16(make_signal(5000, nleads=1, seed=8)[:, 0] * 1000)
    sig.tofile(tmp_path / 'N.dat')
    hea = header(tmp_path, 'N', ['N.dat 16 -1000/mV 16 0 0 0 0 II'], n=5000)
    rec = read_record(hea)
    np.testing.assert_allclose(rec.signal, wfdb.rdrecord(str(tmp_path / 'N')).p_signal)
    np.testing.assert_allclose(rec.signal[:, 0], -sig / 1000)
    assert str(prepare(rec, ['II']).quality) == 'ok'
    lo, hi, tol = rec.clip_limits()
    assert lo[0] < hi[0] and tol[0] > 0


def test_signal_above_250_hz_at_200_khz_is_flagged(tmp_path):
    """1 mV at ~10 kHz sampled at 200 kHz: fine at its own rate, ~0 at 500 Hz."""
    fs, n = 200_000, 200_000 * 3
    t = np.arange(n) / fs
    np.int16(1000 * np.sin(2 * np.pi * 9_973 * t)).tofile(tmp_path / 'H.dat')
    rec = read_record(header(tmp_path, 'H', ['H.dat 16 1000/mV 16 0 0 0 0 II'], fs=fs, n=n))
    assert str(check_quality(rec, rec.read(0, 100_000))) == 'ok'  # at its own rate
    with pytest.raises(RecordError, match='^H: no usable signal: lead\\(s\\) II flat'):
        prepare(rec, ['II'])


# --------------------------------------------------------------------------
# 7. The hospital readers: one budget (records/limits.py) for every format.
# Each writer makes the smallest file that shows its defect.

def xml_file(path, text):
    path.write_text(text)
    return path


def muse_file(path, leads, base='500', exponent=''):
    """GE MUSE RestingECG XML of int16 leads [(name, array)]."""
    data = ''.join(f'<LeadData><LeadAmplitudeUnitsPerBit>4.88</LeadAmplitudeUnitsPerBit>'
                   f'<LeadAmplitudeUnits>MICROVOLTS</LeadAmplitudeUnits><LeadID>{lead}</LeadID>'
                   f"<WaveFormData>{base64.b64encode(np.asarray(x, '<i2').tobytes()).decode()}"
                   f'</WaveFormData></LeadData>' for lead, x in leads)
    exp = f'<SampleExponent>{exponent}</SampleExponent>' if exponent != '' else ''
    return xml_file(path, f'<?xml version="1.0"?>\n<RestingECG><Waveform><WaveformType>Rhythm'
                          f'</WaveformType><SampleBase>{base}</SampleBase>{exp}{data}'
                          f'</Waveform></RestingECG>')


def muse_12(path, n=5000, **kw):
    sig = np.int16(make_signal(n, seed=3) * 200)
    return muse_file(path, list(zip(LEADS, sig.T)), **kw)


def lzw_codes(codes):
    """10-bit codes, MSB first, as Philips XLI packs them."""
    bits = np.unpackbits(np.asarray(codes, '>u2').view(np.uint8)).reshape(-1, 16)[:, 6:]
    return np.packbits(bits.ravel()).tobytes()


def xli_bomb(nbytes):
    """An XLI lead whose LZW codes name ever longer runs of zero bytes (code
    256 is '00', 257 '000', ... 1022 is 768 zeros), then 1022 over and
    over: nbytes decode to ~600 x nbytes."""
    ncodes = nbytes * 8 // 10
    codes = [0] + list(range(256, 1023)) + [1022] * (ncodes - 768)
    lzw = lzw_codes(codes)
    return struct.pack('<ihh', len(lzw), 0, 0) + lzw


def philips_file(path, data, method='XLI', duration=None, characteristics=True):
    dur = f' durationperchannel="{duration}"' if duration else ''
    sc = ('<dataacquisition><signalcharacteristics><samplingrate>500</samplingrate>'
          '<resolution>5</resolution><acquisitiontype>STD-12</acquisitiontype>'
          '<numberchannelsvalid>12</numberchannelsvalid></signalcharacteristics>'
          '</dataacquisition>') if characteristics else ''
    return xml_file(path, f'<?xml version="1.0"?>\n<restingecgdata><documentinfo>'
                          f'<documentversion>1.04</documentversion></documentinfo>{sc}'
                          f'<waveforms><parsedwaveforms compressmethod="{method}"{dur}>'
                          f'{base64.b64encode(data).decode()}</parsedwaveforms></waveforms>'
                          f'</restingecgdata>')


def scp_file(path, leads, counts=None, interval=2000, huffman=False, first=1):
    """An SCP-ECG record: sections 2 (default Huffman, when huffman), 3
    (leads) and 6 (rhythm, no differences, AVM 1000 nV); leads: bytes per
    lead (int16 or Huffman-coded), counts: the samples each declares, as the
    range first..count (the standard's first is 1; some writers' 0)."""
    counts = counts or [len(b) // 2 for b in leads]
    sections = {3: scp_section3(counts, first=first),
                6: scp_leads_section(leads, interval=interval)}
    if huffman:
        sections[2] = struct.pack('<H', 19999)
    return scp_record(path, sections)


def ishne_file(path, sig, fs=500, offset=None, var_len=0):
    """An ISHNE 1.0 Holter file of int16 leads (n, leads) in lead codes 5, 6, ..."""
    n, nleads = sig.shape
    h = bytearray(512)
    struct.pack_into('<iiii', h, 0, var_len, n, 522, 522 + var_len if offset is None
                     else offset)
    struct.pack_into('<h', h, 146, nleads)
    struct.pack_into(f'<{nleads}h', h, 148, *range(5, 5 + nleads))
    struct.pack_into(f'<{nleads}h', h, 196, *[5000] * nleads)   # 5 uV
    struct.pack_into('<h', h, 262, fs)
    path.write_bytes(b'ISHNE1.0' + b'\0\0' + bytes(h) + bytes(var_len) +
                     np.asarray(sig, '<i2').tobytes())
    return path


def dicom_int8(path, channels, samples, fs=500):
    """A 12-lead ECG DICOM of int8 samples (zeros): channels x samples bytes."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.9.1.1'
    meta.MediaStorageSOPInstanceUID = '1.2.3.4'
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta, ds.SOPClassUID, ds.SOPInstanceUID = meta, meta.MediaStorageSOPClassUID, '1.2.3.4'
    g = Dataset()
    g.MultiplexGroupLabel, g.SamplingFrequency = 'RHYTHM', fs
    g.NumberOfWaveformChannels, g.NumberOfWaveformSamples = channels, samples
    g.WaveformBitsAllocated, g.WaveformSampleInterpretation = 8, 'SB'
    chans = []
    for k in range(channels):
        ch, src = Dataset(), Dataset()
        src.CodeValue, src.CodingSchemeDesignator = f'5.6.3-9-{1 + k % 8}', 'SCPECG'
        ch.ChannelSourceSequence, ch.ChannelSensitivity = [src], 1
        ch.ChannelSensitivityCorrectionFactor, ch.ChannelBaseline = 1, 0
        ch.WaveformBitsStored = 8
        chans.append(ch)
    g.ChannelDefinitionSequence = chans
    g.WaveformData = bytes(channels * samples)
    ds.WaveformSequence = [g]
    ds.save_as(str(path), enforce_file_format=True)
    return path


def csv_file(path, header_line, rows):
    path.write_bytes(header_line.encode() + b'\n' + rows)
    return path


def csv_rows(times, nleads=1):
    return ''.join(f'{t:g}' + ',0.1' * nleads + '\n' for t in times).encode()


@pytest.fixture(scope='module')
def hostile_formats(tmp_path_factory):
    """The hostile file of each hospital reader, as the issue measured them."""
    d = tmp_path_factory.mktemp('hostile_formats')
    f = {}
    f['philips_xli_100kB'] = philips_file(d / 'XLI.xml', xli_bomb(100_000))
    long, one = np.zeros(1_350_000, np.int16), np.zeros(1, np.int16)
    f['muse_padded_leads'] = muse_file(d / 'PAD.xml', [('II', long)] + [('I', one)] * 200)
    f['muse_rate_1e9'] = muse_12(d / 'RATE.xml', base='1000000000')
    f['csv_0.001_hz'] = csv_file(d / 'SLOW.csv', 'time,II', csv_rows(range(0, 600_000, 1000)))
    f['csv_30MB'] = csv_file(d / 'BIG.csv', 'I,II', b'0,0\n' * (30 * 2 ** 20 // 4))
    zeros = bytes(65_535)   # 524,280 zero values each, in the default Huffman table
    f['scp_255_leads'] = scp_file(d / 'HUFF.scp', [zeros] * 255, counts=[8 * 65_535] * 255,
                                  huffman=True)
    f['dicom_int8_48MB'] = dicom_int8(d / 'INT8.dcm', 12, 4_000_000)
    f['xml_tiny_elements'] = xml_file(d / 'TINY.xml', '<AnnotatedECG>' + '<a/>' *
                                      (10 * 2 ** 20 // 4) + '</AnnotatedECG>')
    f['cardiosoft_10MB'] = xml_file(d / 'CS.xml', '<CardiologyXML><StripData><SampleRate>500'
                                    '</SampleRate><WaveformData lead="I">' + '0,' *
                                    (5 * 2 ** 20) + '0</WaveformData></StripData>'
                                    '</CardiologyXML>')
    f['ishne_negative_offset'] = ishne_file(d / 'NEG.ecg', np.zeros((5000, 12)), offset=-4096)
    f['mfer_10^9_sequences'] = hostile_mfer(d / 'HUGE.mwf')   # 12 x 500 x 10^9 declared
    return f


def test_predict_scores_a_good_record_past_every_hostile_reader_file(hostile_formats,
                                                                     tmp_path):
    """predict.py --records over the hostile file of every hospital reader and
    one good record: each hostile file is one 'skipped' line naming it, the
    good record is scored and measured, exit 0, no traceback."""
    _, model = tiny_checkpoint(tmp_path, 'TINY-all-s42-f7', 5000)
    good = tmp_path / 'good'
    good.mkdir()
    muse_12(good / 'GOOD.xml')
    folder = next(iter(hostile_formats.values())).parent
    out = tmp_path / 'p.csv'
    done = subprocess.run(
        [sys.executable, 'predict.py', '--model-path', str(model), '--device', 'cpu',
         '--precision', 'fp32', '--records', str(folder), str(good), '--out', str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and 'Traceback' not in done.stderr, done.stderr[-3000:]
    df = pd.read_csv(out)
    assert df['record'].tolist() == ['GOOD'] and np.isfinite(df['hr']).all()
    skipped = [line for line in done.stderr.splitlines() if line.startswith('skipped ')]
    for path in hostile_formats.values():
        assert sum(line.startswith(f'skipped {path.stem}: ') for line in skipped) == 1, \
            (path.name, skipped)


def test_philips_xli_lead_decoding_past_its_budget_is_stopped(tmp_path):
    """100 kB of LZW decode to ~60 MB a lead: stopped at the declared duration
    plus a second, or at the budget's share of a lead without one."""
    with pytest.raises(RecordError, match=r'^D: XLI lead 1 decodes to over 5500 samples'):
        read_record(philips_file(tmp_path / 'D.xml', xli_bomb(100_000), duration=10_000))
    with pytest.raises(RecordError, match=r'^N: XLI lead 1 decodes to over 900000 samples'):
        read_record(philips_file(tmp_path / 'N.xml', xli_bomb(100_000)))


def test_bounded_lzw_equals_sierraecgs_decoder():
    """The LZW loop that replaced sierraecg's byte-a-call decoder gives its
    bytes on random streams (codes above 1022 end both) and on the bomb's
    first codes."""
    from sierraecg.lzw import LzwDecoder

    from records.formats.philips import _lzw
    rng = np.random.default_rng(0)
    streams = [lzw_codes(rng.integers(0, 1023 if k % 2 else 1024, 2000)) for k in range(20)]
    for data in streams + [xli_bomb(3000)[8:]]:
        dec, want = LzwDecoder(data, bits=10), bytearray()
        try:
            while (b := dec.read()) != -1:
                want.append(b)
        except IndexError:   # an unknown first code: sierraecg fails, we stop
            pass
        assert _lzw(data, 10 ** 7, 'x', 1) == bytes(want)


def test_philips_without_its_elements_names_what_is_missing(tmp_path):
    path = philips_file(tmp_path / 'P.xml', b'\0\0\0', method='Uncompressed',
                        characteristics=False)
    with pytest.raises(RecordError, match=r'^P: P.xml: Philips XML 1.04: parsedwaveforms '
                                          r'holds no samples$'):
        read_record(path)


def test_muse_leads_and_values_are_bounded_before_padding(tmp_path):
    long, one = np.zeros(60_000, np.int16), np.zeros(1, np.int16)
    path = muse_file(tmp_path / 'M.xml', [('II', long)] + [('I', one)] * 200)
    with pytest.raises(RecordError, match=r'^M: M.xml: MUSE waveform holds 12060000 values, '
                                          r'over the 10800000'):
        read_record(path)
    path = muse_file(tmp_path / 'L.xml', [('II', long[:10])] + [('I', one)] * 300)
    with pytest.raises(RecordError, match=r'^L: L.xml: MUSE waveform holds 301 leads \(1 to '
                                          r'256 are read\)'):
        read_record(path)


@pytest.mark.parametrize('base, exponent, shown', [('0', '', '0'), ('-500', '', '-500'),
                                                   ('1000000000', '', '1e+09'),
                                                   ('500', '400', 'inf'),
                                                   ('500', '-3', '0.5')])
def test_muse_sample_base_outside_the_rate_range_is_refused(tmp_path, base, exponent, shown):
    path = muse_12(tmp_path / 'R.xml', base=base, exponent=exponent)
    with pytest.raises(RecordError, match=rf'^R: R.xml: sampling rate {re.escape(shown)} Hz is '
                                          r'outside 1-500000 Hz$'):
        read_record(path)


def test_csv_rate_and_size_are_checked_before_parsing(tmp_path):
    path = csv_file(tmp_path / 'S.csv', 'time,II', csv_rows(range(0, 20_000, 1000)))
    with pytest.raises(RecordError, match=r'^S: S.csv: sampling rate 0.001 Hz is outside'):
        read_record(path)
    path = csv_file(tmp_path / 'C.csv', 'time,II', csv_rows([2.0] * 20))
    with pytest.raises(RecordError, match=r"^C: C.csv: time column 'time' does not increase "
                                          r'\(median step 0 s\)'):
        read_record(path)
    path = csv_file(tmp_path / 'F.csv', 'I,II', b'0,0\n' * 20)
    with pytest.raises(RecordError, match=r'^F: F.csv: sampling rate -500 Hz is outside'):
        read_record(path, fs=-500)
    path = csv_file(tmp_path / 'V.csv', 'I,II', b'0,0\n' * 6_000_000)
    with pytest.raises(RecordError, match=r'^V: V.csv: CSV holds 12000000 values, over the'):
        read_record(path, fs=500)
    path = csv_file(tmp_path / 'B.csv', 'I,II', b'0,0\n' * (33 * 2 ** 20 // 4))
    with pytest.raises(RecordError, match=r'^B: B.csv is 33.0 MB, over the 32 MB a CSV'):
        read_record(path, fs=500)


def test_scp_default_huffman_decoder_matches_its_table_and_is_bounded(tmp_path):
    """The numpy decoder against values coded by the table (every code
    length); the real export's CRC and samples are tested in test_formats."""
    from records.formats.scp import _crc_ccitt, _scp_huffman_default
    rng = np.random.default_rng(0)
    values = np.r_[0, 1, -1, 8, -8, 9, -9, 127, -128, 128, -129, 32767, -32768,
                   rng.integers(-20, 21, 3000), rng.integers(-32768, 32768, 50)]
    np.testing.assert_array_equal(_scp_huffman_default(scp_huffman(values), len(values)), values)
    assert len(_scp_huffman_default(scp_huffman(values)[:-40], len(values))) < len(values)
    sig = np.int16(make_signal(5000, seed=4) * 200)[:, :8]
    rec = read_record(scp_file(tmp_path / 'H.scp', [scp_huffman(x) for x in sig.T],
                               counts=[5000] * 8, huffman=True))
    np.testing.assert_allclose(rec.signal, sig / 1000.0)
    with pytest.raises(RecordError, match=r'^Z: Z.scp: SCP-ECG holds 133691400 values, over'):
        read_record(scp_file(tmp_path / 'Z.scp', [bytes(65_535)] * 255,
                             counts=[8 * 65_535] * 255, huffman=True))
    with pytest.raises(RecordError, match=r'^I: I.scp: sampling rate 0 Hz is outside'):
        read_record(scp_file(tmp_path / 'I.scp', [sig[:, 0].tobytes()], interval=0))
    data = os.urandom(1 << 16)   # binascii's CRC-CCITT = EN 1064's, bit by bit

    def by_bits(data, crc=0xFFFF):
        for byte in data:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
        return crc
    assert _crc_ccitt(data) == by_bits(data)


@pytest.mark.parametrize('huffman', [False, True], ids=['uncompressed', 'huffman'])
def test_scp_lead_ranges_starting_at_0_are_read(tmp_path, huffman):
    """Section 3 ranges 0..10000 for 10,000 samples (a writer numbering from
    0 with the standard's end) read as the standard's 1..10000, not refused
    as 'ends early (10000 of 10001 samples)'; the standard's 1..10000 reads
    the same."""
    sig = np.int16(make_signal(10_000, seed=5) * 200)[:, :8]
    data = [scp_huffman(x) if huffman else x.tobytes() for x in sig.T]
    for first in (0, 1):
        rec = read_record(scp_file(tmp_path / f'F{first}.scp', data, counts=[10_000] * 8,
                                   huffman=huffman, first=first))
        assert rec.sig_len == 10_000
        np.testing.assert_array_equal(rec.signal, sig / 1000.0)


def test_scp_file_over_its_ceiling_is_refused_before_its_crc(tmp_path):
    from records.limits import MAX_SCP_BYTES
    path = scp_file(tmp_path / 'W.scp', [bytes(65_534)] * 12)
    with open(path, 'ab') as f:
        f.truncate(MAX_SCP_BYTES + 1)
    with pytest.raises(RecordError, match=r'^W: W.scp is 21.6 MB, over the 21 MB an SCP'):
        read_record(path)


def test_dicom_channels_times_samples_checked_before_the_waveform(tmp_path):
    path = dicom_int8(tmp_path / 'D.dcm', 12, 1_000_000)
    with pytest.raises(RecordError, match=r'^D: D.dcm: DICOM waveform 1 holds 12000000 values'):
        read_record(path)
    assert read_record(dicom_int8(tmp_path / 'S.dcm', 12, 5000)).sig_len == 5000


def test_xml_size_and_element_ceilings(tmp_path):
    path = xml_file(tmp_path / 'T.xml', '<AnnotatedECG>' + '<a/>' * 200_000 + '</AnnotatedECG>')
    with pytest.raises(RecordError, match=r'^T: T.xml: XML with 200002 tags, over the 100000'):
        read_record(path)
    path = xml_file(tmp_path / 'G.xml', '<RestingECG>' + ' ' * (9 << 20) + '</RestingECG>')
    with pytest.raises(RecordError, match=r'^G: G.xml is 9.0 MB, over the 8 MB a muse XML'):
        read_record(path)


@pytest.mark.parametrize('offset, why', [(-4096, 'at byte -4096'), (524, 'at byte 524')])
def test_ishne_ecg_offset_must_follow_the_variable_block(tmp_path, offset, why):
    sig = np.int16(make_signal(5000, seed=5) * 200)
    good = read_record(ishne_file(tmp_path / 'GOOD.ecg', sig))
    np.testing.assert_allclose(good.signal, sig * 0.005)
    with pytest.raises(RecordError, match=rf'^E: E.ecg: ISHNE header puts the ECG {why}, not '
                                          r'after its 0-byte variable block \(byte 522\)'):
        read_record(ishne_file(tmp_path / 'E.ecg', sig, offset=offset))


def test_negative_rates_are_refused_as_rates(tmp_path):
    """A negative rate read as one failed later as 'window ending at sample
    -5000 is empty'."""
    aecg = ('<AnnotatedECG><component><series><code code="RHYTHM"/><component><sequenceSet>'
            '<component><sequence><code code="TIME_ABSOLUTE"/><value><head value="0"/>'
            '<increment value="-0.002" unit="s"/></value></sequence></component>'
            '<component><sequence><code code="MDC_ECG_LEAD_II"/><value><origin value="0"/>'
            '<scale value="5" unit="uV"/><digits>' + ' '.join(['1'] * 5000) + '</digits>'
            '</value></sequence></component></sequenceSet></component></series></component>'
            '</AnnotatedECG>')
    with pytest.raises(RecordError, match=r'^A: A.xml: sampling rate -500 Hz is outside'):
        read_record(xml_file(tmp_path / 'A.xml', aecg))
    sig = np.int16(make_signal(5000, seed=5) * 200)
    ishne_file(tmp_path / 'I.ecg', sig, fs=-500)
    with pytest.raises(RecordError, match=r'^I: I.ecg: sampling rate -500 Hz is outside'):
        read_record(tmp_path / 'I.ecg')


def good_files(folder, n, seed=0):
    """One file of each reader holding 12 leads x n samples (int16 values of
    a few hundred LSB; SCP-ECG: at most 32,000, its lead sizes are uint16)
    -> {reader: path}."""
    import pyedflib
    sig = np.random.default_rng(seed).integers(-400, 400, (n, 12)).astype(np.int16)
    folder.mkdir(exist_ok=True)
    text = [','.join(map(str, x)) for x in sig.T]
    seqs = ''.join(f'<component><sequence><code code="MDC_ECG_LEAD_{lead}"/><value><origin '
                   f'value="0"/><scale value="5" unit="uV"/><digits>{t.replace(",", " ")}'
                   f'</digits></value></sequence></component>' for lead, t in zip(LEADS, text))
    edf = str(folder / 'E.edf')
    heads = pyedflib.highlevel.make_signal_headers(list(LEADS), sample_frequency=500,
                                                   physical_min=-500, physical_max=500)
    pyedflib.highlevel.write_edf(edf, sig.T.astype(np.float64), heads)
    return {
        'muse': muse_file(folder / 'M.xml', list(zip(LEADS, sig.T))),
        'philips': philips_file(folder / 'P.xml', sig.T.tobytes(), method='Uncompressed',
                                duration=n * 2),
        'cardiosoft': xml_file(folder / 'C.xml', '<CardiologyXML><StripData><SampleRate>500'
                               '</SampleRate>' + ''.join(f'<WaveformData lead="{lead}">{t}'
                                                         f'</WaveformData>' for lead, t in
                                                         zip(LEADS, text)) +
                               '</StripData></CardiologyXML>'),
        'aecg': xml_file(folder / 'A.xml', '<AnnotatedECG><component><series><code code='
                         '"RHYTHM"/><component><sequenceSet><component><sequence><code code='
                         '"TIME_ABSOLUTE"/><value><head value="0"/><increment value="0.002" '
                         f'unit="s"/></value></sequence></component>{seqs}</sequenceSet>'
                         '</component></series></component></AnnotatedECG>'),
        'scp': scp_file(folder / 'S.scp', [x[:32_000].tobytes() for x in sig.T]),
        'dicom': dicom_int8(folder / 'D.dcm', 12, n),
        'csv': csv_file(folder / 'V.csv', 'time,' + ','.join(LEADS),
                        '\n'.join(f'{i / 500:g},' + ','.join(map(str, r))
                                  for i, r in enumerate(sig)).encode() + b'\n'),
        'ishne': ishne_file(folder / 'I.ecg', sig),
        'edf': Path(edf),
        'mfer': mfer_file(folder / 'F.mwf', [(code, x, {}) for code, x in
                                             zip([1, 2, 61, 62, 63, 64, 3, 4, 5, 6, 7, 8], sig.T)]),
    }


MEMORY_MULTIPLE = {'muse': 4, 'philips': 4, 'cardiosoft': 4, 'aecg': 4, 'scp': 4, 'dicom': 4,
                   'csv': 4, 'ishne': 3, 'edf': 3, 'mfer': 4}


def test_memory_multiple_of_each_reader(tmp_path):
    """A file within the budget costs at most MEMORY_MULTIPLE[reader] times
    its decoded signal (8 bytes a value) on top of a small file of the same
    reader (the import and fixed costs): the multiples of docs/hostile.md."""
    n_small, n_big = 5000, 150_000
    small, big = good_files(tmp_path / 'small', n_small), good_files(tmp_path / 'big', n_big)
    got = in_children({**{f'{k} small': ['load', str(v)] for k, v in small.items()},
                       **{f'{k} big': ['load', str(v)] for k, v in big.items()}})
    multiples = {}
    for reader in small:
        s, b = got[f'{reader} small'], got[f'{reader} big']
        big_n = min(n_big, 32_000) if reader == 'scp' else n_big
        assert s['result'] == f'ok: {12 * n_small}' and b['result'] == f'ok: {12 * big_n}', \
            (reader, s, b)
        signal_mb = 12 * (big_n - n_small) * 8 / 2 ** 20
        multiple = (b['rss_mb'] - s['rss_mb']) / signal_mb
        print(f"{reader:10s} {b['rss_mb'] - s['rss_mb']:6.1f} MB for {signal_mb:.1f} MB of "
              f"signal: x{multiple:.1f}, {b['seconds']:.2f} s")
        multiples[reader] = multiple
    assert all(multiples[k] <= MEMORY_MULTIPLE[k] for k in multiples), multiples


def test_edf_window_is_held_to_the_read_ceiling(tmp_path, monkeypatch):
    """EDF is read per window, as WFDB: a window of more than READ_MAX_VALUES
    values (256 channels at 500 kHz make 128 M in one second) is refused."""
    import records.formats.edf as edf
    path = good_files(tmp_path, 1000)['edf']
    rec = read_record(path)
    assert rec.read(0, 1000).shape == (1000, 12)
    monkeypatch.setattr(edf, 'READ_MAX_VALUES', 1000)
    with pytest.raises(RecordError, match=r'^E: 100 samples of 12 channels need 1200 values, '
                                          r'over 1000$'):
        rec.read(0, 100)
