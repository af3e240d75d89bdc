"""records.formats through records.read_record: files the tests write (DICOM with
pydicom, EDF with pyedflib, CSV, MUSE/aECG/Philips XML, a WFDB header without
a length) read back to the samples written; patient identifiers never reach
predict.py's output; unsafe and broken files get one line; the real exports
in ../shared/data/formats are scored or named with their reason."""
import base64
import dataclasses
import hashlib
import struct

import numpy as np
import pandas as pd
import pytest
import wfdb
from helpers import ecg_like, one_epoch_model
from helpers import predict_records as run
from format_writers import NAME, FAMILY, PID, SECRETS, SOP_UID, write_dicom, muse_xml, digital_12

from records import LEADS, Record, RecordError, formats, ignored_channels, prepare, read_record
from utils import CLASSES

@pytest.fixture(scope='module')
def all_leads_model(tmp_path_factory):
    """A 1-epoch resnet18 on all 12 leads of the tiny database (window 256)."""
    return one_epoch_model(tmp_path_factory.mktemp('all'), 'all')


# --------------------------------------------------------------------------
# Files the tests write, read back.

def test_dicom_written_by_pydicom_reads_back(tmp_path):
    d = digital_12(fs=500)
    path = write_dicom(tmp_path / 'ecg.dcm', d, 500, sensitivity=2.5, baseline=10.0)
    rec = read_record(path)
    assert rec.fs == 500 and rec.sig_len == 5000 and rec.age == 61 and rec.sex == 'Male'
    assert rec.leads == ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5',
                         'V6']
    np.testing.assert_allclose(rec.signal, (d * 2.5 + 10.0) / 1000, atol=1e-9)
    assert rec.median['signal'].shape == (250, 12)  # kept apart, not the rhythm
    assert rec.device_measurements == {'qrs_ms': 96.0}
    assert rec.device_statements == ['SINUS RHYTHM', 'NORMAL ECG']
    # named by its SOP Instance UID: the record gets a content hash instead
    uid = write_dicom(tmp_path / f'{SOP_UID}.dcm', d, 500)
    assert read_record(uid).name.startswith('dicom-') and SOP_UID not in read_record(uid).name


def test_hemodynamic_dicom_keeps_its_ecg_channels(tmp_path):
    d = digital_12(fs=500)[:, :3]
    path = write_dicom(tmp_path / 'cath.dcm', d, 500, median=False,
                       sop='1.2.840.10008.5.1.4.1.1.9.2.1',
                       codes=[('2:1', 'Lead I'), ('2:2', 'Lead II'),
                              ('2:18944', 'Arterial blood pressure')])
    rec = read_record(path)
    assert rec.leads == ['I', 'II'] and ignored_channels(rec) == ['Arterial blood pressure']
    np.testing.assert_allclose(rec.signal, d[:, :2] * 2.5 / 1000, atol=1e-9)


def test_edf_written_by_pyedflib_reads_back_and_lead_map(tmp_path):
    import pyedflib
    fs, n = 250, 250 * 12
    sig = ecg_like(n, fs, 3, seed=4)
    path = tmp_path / 'holter.edf'
    heads = [{'label': lab, 'dimension': 'mV', 'sample_frequency': fs, 'physical_max': 5.0,
              'physical_min': -5.0, 'digital_max': 32767, 'digital_min': -32768,
              'transducer': '', 'prefilter': ''} for lab in ('ECG I', 'EKG II', 'ECG')]
    heads.append(dict(heads[0], label='Pleth', dimension='%', sample_frequency=50,
                      physical_max=100.0, physical_min=0.0))
    with pyedflib.EdfWriter(str(path), 4, file_type=pyedflib.FILETYPE_EDFPLUS) as w:
        w.setPatientName(f'{FAMILY}_{NAME}')
        w.setPatientCode(PID)
        w.setSignalHeaders(heads)
        w.writeSamples([np.ascontiguousarray(sig[:, k]) for k in range(3)]
                       + [np.full(n // 5, 97.0)])
    rec = read_record(path)
    assert rec.fs == fs and rec.sig_len == n
    assert rec.leads == ['I', 'II', None]
    assert ignored_channels(rec) == ['ECG', 'Pleth']
    np.testing.assert_allclose(rec.signal, sig, atol=10 / 32767 + 1e-9)  # 16-bit over ±5 mV
    mapped = read_record(path, lead_map='ECG=V5')
    assert mapped.leads == ['I', 'II', 'V5'] and ignored_channels(mapped) == ['Pleth']
    only = tmp_path / 'generic.edf'
    with pyedflib.EdfWriter(str(only), 1, file_type=pyedflib.FILETYPE_EDF) as w:
        w.setSignalHeaders(heads[2:3])
        w.writeSamples([np.ascontiguousarray(sig[:, 2])])
    with pytest.raises(RecordError, match=r"^generic: no ECG lead among the signals ECG; say "
                                          r"which lead each is with --lead-map, e.g. "
                                          r"--lead-map 'ECG=II'$"):
        read_record(only)
    assert read_record(only, lead_map='ecg=ii').leads == ['II']


def test_csv_with_time_column_or_fs(tmp_path):
    sig = ecg_like(1000, 250, 2, seed=5)
    t = np.arange(1000) / 250
    path = tmp_path / 'watch.csv'
    pd.DataFrame({'time': t, 'II': sig[:, 0], 'V5 (uV)': sig[:, 1] * 1000,
                  'battery': 1.0}).to_csv(path, index=False)
    rec = read_record(path)
    assert rec.fs == pytest.approx(250) and rec.leads == ['II', 'V5', None]
    assert ignored_channels(rec) == ['battery']
    np.testing.assert_allclose(rec.signal[:, :2], sig, atol=1e-9)
    bare = tmp_path / 'bare.csv'
    pd.DataFrame({'I': sig[:, 0], 'II': sig[:, 1]}).to_csv(bare, index=False)
    with pytest.raises(RecordError, match='^bare: bare.csv: CSV without a time column; give '
                                          'the sampling rate with --fs HZ'):
        read_record(bare)
    assert read_record(bare, fs=250).duration == pytest.approx(4.0)


def test_wfdb_header_without_length(tmp_path):
    sig = ecg_like(1800, 360, 2, seed=6)
    wfdb.wrsamp('NOLEN', fs=360, units=['mV', 'mV'], sig_name=['MLII', 'V5'], p_signal=sig,
                fmt=['212', '212'], adc_gain=[200.0, 200.0], baseline=[0, 0],
                write_dir=str(tmp_path))
    hea = tmp_path / 'NOLEN.hea'
    lines = hea.read_text().splitlines()
    lines[0] = ' '.join(lines[0].split()[:3])  # 'NOLEN 2 360': no length
    hea.write_text('\n'.join(lines) + '\n')
    rec = read_record(tmp_path / 'NOLEN')
    assert rec.sig_len == 1800
    np.testing.assert_allclose(rec.signal, sig, atol=0.5 / 200 + 1e-9)


def test_muse_xml_written_reads_back_and_lying_extension(tmp_path):
    d = np.rint(ecg_like(5000, 500, 8, seed=7) * 200).astype(np.int16)
    (tmp_path / 'cart.dcm').write_text(muse_xml(d))  # a MUSE XML named .dcm
    rec = read_record(tmp_path / 'cart.dcm')
    assert rec.format == 'muse' and rec.leads[:2] == ['I', 'II'] and rec.age == 61
    np.testing.assert_allclose(rec.signal, d * 4.88 / 1000, atol=1e-9)
    assert rec.device_measurements == {'hr': 72.0, 'qrs_ms': 88.0}
    x = prepare(rec, 'all').x  # III, aVR, aVL, aVF from I and II
    np.testing.assert_allclose(x[2], x[1] - x[0], atol=2e-3)
    (tmp_path / 'noise.xml').write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RecordError, match=r'^noise: noise.xml: content is no ECG format read '
                                          r'here \(its extension says xml'):
        read_record(tmp_path / 'noise.xml')


BOMB = ('<?xml version="1.0"?><!DOCTYPE RestingECG [<!ENTITY a "aaaaaaaaaa">'
        + ''.join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                  for i in range(8)) + ']><RestingECG>&i;</RestingECG>')
XXE = ('<?xml version="1.0"?><!DOCTYPE AnnotatedECG [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
       '<AnnotatedECG>&x;</AnnotatedECG>')


@pytest.mark.parametrize('name,text', [('bomb', BOMB), ('xxe', XXE)])
def test_xml_bomb_and_external_entity_refused(tmp_path, name, text):
    (tmp_path / f'{name}.xml').write_text(text)
    with pytest.raises(RecordError, match=rf'^{name}: {name}.xml: unsafe XML refused '
                                          r'\(EntitiesForbidden'):
        read_record(tmp_path / f'{name}.xml')


def test_broken_files_get_one_line(tmp_path):
    d = np.rint(ecg_like(5000, 500, 8) * 200).astype(np.int16)
    bad = muse_xml(d).replace('<WaveFormData>', '<WaveFormData>@@not base64@@', 1)
    (tmp_path / 'b64.xml').write_text(bad)
    with pytest.raises(RecordError, match=r'^b64: bad base64 in MUSE lead I$'):
        read_record(tmp_path / 'b64.xml')
    (tmp_path / 'cut.xml').write_text(muse_xml(d)[:3000])
    with pytest.raises(RecordError, match=r'^cut: cut.xml: malformed XML'):
        read_record(tmp_path / 'cut.xml')
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.9.1.1'
    ds.SOPInstanceUID = '1.2.3'
    ds.save_as(str(tmp_path / 'empty.dcm'), enforce_file_format=True)
    with pytest.raises(RecordError, match=r'^empty: DICOM \(12-lead ECG\) holds no waveform$'):
        read_record(tmp_path / 'empty.dcm')
    zeros = base64.b64encode(np.zeros(12 * 5000, '<i2').tobytes()).decode()
    philips = ('<?xml version="1.0"?><restingecgdata xmlns="http://www3.medical.philips.com">'
               '<documentinfo><documentversion>1.04</documentversion></documentinfo>'
               '<waveforms><parsedwaveforms dataencoding="Base64" compression="Uncompressed" '
               'numberofleads="12" durationperchannel="10000" samplespersecond="500" '
               f'resolution="5">{zeros}</parsedwaveforms></waveforms></restingecgdata>')
    (tmp_path / 'flat.xml').write_text(philips)
    with pytest.raises(RecordError, match=r'^flat: flat.xml: every lead is missing'):
        read_record(tmp_path / 'flat.xml')
    early = base64.b64encode(np.int32(4000).tobytes() + b'\0' * 20).decode()
    (tmp_path / 'xli.xml').write_text(philips.replace('Uncompressed', 'XLI').replace(zeros,
                                                                                     early))
    with pytest.raises(RecordError, match=r'^xli: XLI stream ends early'):
        read_record(tmp_path / 'xli.xml')


def test_identifiers_never_reach_predict_output(all_leads_model, tmp_path, capsys, caplog):
    import warnings
    d = digital_12(fs=500, seed=8)
    with warnings.catch_warnings():  # writing: pydicom warns about the invalid UID
        warnings.simplefilter('ignore')
        write_dicom(tmp_path / 'visit.dcm', d, 500)
        write_dicom(tmp_path / f'{SOP_UID}.dcm', d, 500)
    (tmp_path / f'{PID}.xml').write_text(muse_xml(d[:, [0, 1, 6, 7, 8, 9, 10, 11]]))
    capsys.readouterr()
    caplog.clear()
    out_csv = tmp_path / 'p.csv'
    with warnings.catch_warnings(record=True) as caught:  # what a console would show
        warnings.simplefilter('always')
        df = run(all_leads_model, tmp_path / '*.dcm', tmp_path / '*.xml',
                 extra=['--out', str(out_csv)])
    out, err = capsys.readouterr()
    assert len(df) == 3 and df['record'].iloc[1] == 'visit'  # the UID-named one sorts first
    text = out + err + out_csv.read_text() + caplog.text + ' '.join(str(w.message)
                                                                    for w in caught)
    for secret in SECRETS + [SOP_UID, '8675309']:
        assert secret not in text and secret.lower() not in text.lower()
    assert df['device_qrs_ms'].tolist() == [96.0, 96.0, 88.0]
    assert df['device_statements'].iloc[0] == 'SINUS RHYTHM | NORMAL ECG'
    assert "cart's reading (the device's, not this model's): qrs_ms 96" in out


# --------------------------------------------------------------------------
# The real exports in ../shared/data/formats.

def real_files(shared):
    import pydicom.data
    root = shared / 'formats'
    files = sorted(p for p in root.rglob('*') if p.is_file() and p.suffix.lower() not in
                   ('.md', '.ann'))
    return files + [pydicom.data.get_testdata_file('waveform_ecg.dcm')]


def test_every_real_export_is_scored_or_named(all_leads_model, shared_data, tmp_path, capsys):
    files = real_files(shared_data)
    df = run(all_leads_model, *files, extra=['--out', str(tmp_path / 'all.csv')])
    err = capsys.readouterr().err
    skipped = [line for line in err.splitlines() if line.startswith('skipped ')]
    assert skipped == ['skipped healforce_62: not a compliant SCP-ECG record (its length field '
                       'says 1928331264 bytes, the file has 32768): a device-specific variant '
                       "(e.g. a Healforce handheld's packed 10-bit SCP), which no maintained "
                       'reader reads']
    assert len(df) == len(files) - 1
    scores = df[[f'score_{c}' for c in CLASSES]].to_numpy()
    assert np.isfinite(scores).all()
    flagged = dict(zip(df['record'], df['quality']))
    assert flagged['contec_0000050'] == 'flat V1,V2,V3,V4,V5,V6'
    assert all(q == 'ok' for r, q in flagged.items() if r != 'contec_0000050')
    # the cart's reading where the file carries one
    muse = df.set_index('record').loc['guangxi_teaching_sinus_rhythm']
    assert (muse['device_hr'], muse['device_qrs_ms'], muse['device_qtc_ms']) == (97, 74, 417)
    assert df.set_index('record').loc['waveform_ecg', 'device_statements'] == \
        'RITMO SINUSALE | ECG NORMALE'
    assert df['fs'].min() == 500 and set(df['duration_s'].round()) >= {10.0}


def test_every_reader_builds_its_record_with_declared_fields_only(shared_data):
    """Each reader builds its Record in one call: nothing outside the fields
    records.Record declares is set on it, and `format` names the reader."""
    declared = {f.name for f in dataclasses.fields(Record)} | {'_scale', '_signal'}
    formats_seen = set()
    for path in real_files(shared_data) + [shared_data / 'cpsc2018_wfdb' / 'A0001.hea']:
        try:
            rec = read_record(path)
        except RecordError:
            continue  # healforce_62, refused with its reason (the test above)
        assert set(vars(rec)) == declared, path
        formats_seen.add(rec.format)
    assert formats_seen == {'wfdb', 'dicom', 'muse', 'cardiosoft', 'philips', 'aecg', 'scp',
                            'ishne', 'edf'}


def test_same_recording_in_three_formats(all_leads_model, shared_data, tmp_path):
    root = shared_data / 'formats'
    files = [root / 'hl7_aecg' / 'mortara_eli250_example_aecg.xml',
             root / 'scp_ecg' / 'converted' / 'ecgtoolkit_Example.scp',
             root / 'dicom_ecg' / 'converted' / 'ecgtoolkit_Example.dcm']
    xs = [prepare(read_record(f), LEADS).x for f in files]
    for x in xs[1:]:
        assert np.abs(x - xs[0]).max() <= 0.0025 + 1e-6  # one quantum of 2.5 uV
    df = run(all_leads_model, *files, extra=['--out', str(tmp_path / 'three.csv')])
    scores = df[[f'score_{c}' for c in CLASSES]].to_numpy()
    assert np.abs(scores - scores[0]).max() < 1e-4
    recs = [read_record(f) for f in files]
    assert recs[0].device_measurements == {k: v for k, v in recs[2].device_measurements.items()}


def test_philips_agrees_with_sierraecg_and_drops_calibration(shared_data):
    import sierraecg
    for path in sorted((shared_data / 'formats' / 'philips_sierra_xml').rglob('*.*')):
        rec = read_record(path)
        assert rec.sig_len == 5000 and rec.fs == 500  # 11 s less the calibration second
        lib = np.array([lead.samples for lead in sierraecg.read_file(str(path)).leads]).T
        np.testing.assert_allclose(rec.signal, lib[:5000] * 5 / 1000, atol=1e-9)
        assert (lib[5000:] == 200).any()  # the pulse sierraecg keeps


def test_ishne_holter_reads_with_its_beat_labels(shared_data):
    path = shared_data / 'formats' / 'ishne_holter' / 'ECG_P28.01.ecg'
    rec = read_record(path)
    assert rec.fs == 1000 and rec.sig_len == 95573 and rec.leads == list(LEADS)
    samples, labels = formats.read_ishne_beats(path)
    assert len(samples) > 50 and (np.diff(samples) > 0).all() and samples[-1] < rec.sig_len
    rr = np.diff(samples) / rec.fs
    assert 0.3 < np.median(rr) < 2.0
    assert set(labels) <= set('NVSAFX?!UJ')
    assert rec.name == 'ishne-' + hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_find_records_and_uploads_take_the_formats(tmp_path):
    import io
    import zipfile

    from records import find_records, uploads
    d = digital_12(fs=500, seed=9)
    write_dicom(tmp_path / 'a.dcm', d, 500)
    (tmp_path / 'a.xml').write_text(muse_xml(d[:, :8]))  # same stem, another record
    pd.DataFrame({'patient_id': ['x'], 'AF': [1]}).to_csv(tmp_path / 'labels.csv', index=False)
    pd.DataFrame({'time': [0, .002, .004], 'II': [0, 1, 0]}).to_csv(tmp_path / 'ii.csv',
                                                                    index=False)
    paths, problems = find_records([str(tmp_path)])
    assert [p.name for p in paths] == ['a.dcm', 'a.xml', 'ii.csv'] and problems == []
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.write(tmp_path / 'a.dcm', 'exports/a.dcm')
        z.writestr('exports/cart.bin', muse_xml(d[:, :8]))  # the content decides
    recs, problems = uploads.load_uploads([('exports.zip', buf.getvalue())], ['I', 'II'], 256)
    assert problems == [] and sorted(r.name for r in recs) == ['a', 'cart']
    assert {r.record.device_measurements.get('qrs_ms') for r in recs} == {96.0, 88.0}


def test_preprocess_a_folder_of_exports_with_labels(tmp_path, capsys):
    import preprocess
    data = tmp_path / 'exports'
    data.mkdir()
    for i in range(12):  # DICOM, MUSE XML and CSV exports, AF or SNR
        d = digital_12(fs=500, seed=20 + i)
        if i % 3 == 0:
            write_dicom(data / f'e{i:02d}.dcm', d, 500)
        elif i % 3 == 1:
            (data / f'e{i:02d}.xml').write_text(muse_xml(d[:, [0, 1, 6, 7, 8, 9, 10, 11]]))
        else:
            cols = {lead: d[:, k] * 2.5 / 1000 for k, lead in enumerate(LEADS)}
            pd.DataFrame({'time': np.arange(5000) / 500, **cols, 'Resp': 0.0}).to_csv(
                data / f'e{i:02d}.csv', index=False)
    labels = pd.DataFrame({'record': [f'e{i:02d}' for i in range(12)],
                           'dx': ['164889003' if i % 2 else '426783006' for i in range(12)]})
    labels.to_csv(tmp_path / 'labels_in.csv', index=False)
    preprocess.main(['--data-dir', str(data), '--labels', str(tmp_path / 'labels_in.csv'),
                     '--workers', '1'])
    ref = pd.read_csv(data / 'reference.csv', dtype=str, keep_default_na=False)
    out = pd.read_csv(data / 'labels.csv', dtype={'patient_id': str})
    assert len(out) == 12 and out['AF'].sum() == 6 and out['SNR'].sum() == 6
    assert set(ref.loc[ref['patient_id'] == 'e02', 'ignored']) == {'Resp'}
    assert (ref['quality'] == 'ok').all() and set(out['fold']) <= set(range(1, 11))
    assert (data / 'cache' / 'signals.npy').is_file()
    text = capsys.readouterr().out + (data / 'reference.csv').read_text()
    assert not any(s in text for s in SECRETS)


def xli_encode(leads):
    """Philips XLI of integer leads (the inverse of formats.xli_decode): second
    differences as high/low byte halves, LZW with literal 10-bit codes only
    (a valid stream: the decoder's dictionary is never needed)."""
    out = b''
    for s in leads:
        s = np.asarray(s, np.int64)
        d = np.zeros(len(s), np.int64)
        d[:2] = s[:2]
        first = 2 * s[1] - s[0] - s[2]
        d[2:-1] = 2 * s[2:-1] - s[1:-2] - s[3:] + 64   # e[i] = d[i-1] - 64
        u = d.astype(np.int16).view(np.uint16)
        raw = bytes((u >> 8).astype(np.uint8)) + bytes((u & 0xFF).astype(np.uint8))
        bits = ''.join(f'{b:010b}' for b in raw)
        bits += '0' * (-len(bits) % 8)
        lzw = int(bits, 2).to_bytes(len(bits) // 8, 'big')
        out += struct.pack('<ihh', len(lzw), 0, first) + lzw
    return out


def test_xli_decodes_values_beyond_int16(tmp_path):
    from sierraecg.xli import xli_decode as sierra_decode
    ramp = np.arange(600) * 70  # up to 41930: over int16 once decoded
    beat = np.rint(ecg_like(600, 500, 1, seed=11)[:, 0] * 200).astype(np.int64)
    data = xli_encode([beat, ramp])
    got = formats.xli_decode(data, 'x')
    np.testing.assert_array_equal(got[0], beat)
    np.testing.assert_array_equal(got[1], ramp)
    with pytest.raises(OverflowError):  # the library's int16 arithmetic
        sierra_decode(data, ['I', 'II'])


def test_export_labels_by_codes_or_class_columns(tmp_path):
    import preprocess
    from utils import CLASS_TO_SNOMED
    pd.DataFrame({'record': ['a', 'b'], **{c: [int(c == 'AF'), int(c in ('RBBB', 'PVC'))]
                                          for c in CLASSES}}).to_csv(tmp_path / 'c.csv',
                                                                     index=False)
    assert preprocess.read_export_labels(tmp_path / 'c.csv') == {
        'a': [CLASS_TO_SNOMED['AF']], 'b': [CLASS_TO_SNOMED['RBBB'], CLASS_TO_SNOMED['PVC']]}
    pd.DataFrame({'record': ['a'], 'dx': ['164889003, 59118001']}).to_csv(tmp_path / 'd.csv',
                                                                        index=False)
    assert preprocess.read_export_labels(tmp_path / 'd.csv') == {'a': ['164889003', '59118001']}
    pd.DataFrame({'name': ['a']}).to_csv(tmp_path / 'bad.csv', index=False)
    with pytest.raises(SystemExit, match='needs a column record and either dx'):
        preprocess.read_export_labels(tmp_path / 'bad.csv')
