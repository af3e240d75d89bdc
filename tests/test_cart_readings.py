"""The cart's own reading (records.Record.device_measurements and
device_statements), read right: files the tests write in each vendor's
layout (Philips global and per-lead blocks, a failed Philips analysis,
MDC-coded DICOM measurements, a PR of 0, CardioSoft's '---' separator,
'Confirmed by' lines), the real exports of ../shared/data/formats, and the
staff names and file names that must not reach predict.py's CSV or the
upload's problem lines."""
import base64
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import one_epoch_model
from helpers import predict_records as run
from format_writers import PID, digital_12, muse_xml, write_dicom

from records import LEADS, read_record, uploads
from records.formats.common import NAME_REMOVED, without_staff_names
from records.measurements import DEVICE_KEYS, VENDOR_CODES

STAFF, GIVEN = 'Vbnmlkjhgf', 'Poiuytrewq'   # a made-up physician: never in any output
CONFIRMED = f'Confirmed by {STAFF}, {GIVEN} M.D. (1234) on 3/4/2015 11:22:33 AM'


@pytest.fixture(scope='module')
def all_leads_model(tmp_path_factory):
    """A 1-epoch resnet18 on all 12 leads of the tiny database (window 256)."""
    return one_epoch_model(tmp_path_factory.mktemp('all'), 'all')


# --------------------------------------------------------------------------
# Writers, in each vendor's layout.

def philips_xml(interp_meas, statements, lead_meas=True, cross_lead=True, version='1.04'):
    """A Philips PhilipsECG 1.04 XML, uncompressed 12 leads of 10 s, in the
    real files' order: internalmeasurements (the cross-lead block, its mean
    intervals unless not `cross_lead`; then per-lead blocks, lead I's QRS 86 /
    QT 392 / PR 140 first), then the interpretation (globalmeasurements
    `interp_meas`, statements)."""
    d = digital_12(fs=500, seed=3)
    wave = base64.b64encode(np.asarray(d.T, '<i2').tobytes()).decode()
    per_lead = ''.join(
        f'<leadmeasurement leadname="{lead}"><qrsdur>{86 + i}</qrsdur><print>{140 + i}</print>'
        f'<qtint>{392 + i}</qtint></leadmeasurement>' for i, lead in enumerate(LEADS)) \
        if lead_meas else ''
    glob = ''.join(f'<{tag} editedflag="False">{v}</{tag}>' for tag, v in interp_meas.items())
    means = ('<meanventrate>71</meanventrate><meanprint>150</meanprint><meanqrsdur>97'
             '</meanqrsdur><meanqtint>397</meanqtint><meanqtc>416</meanqtc>') if cross_lead else ''
    stmts = ''.join(f'<statement><leftstatement>{left}</leftstatement>'
                    f'<rightstatement>{right}</rightstatement></statement>'
                    for left, right in statements)
    return (f'<?xml version="1.0" encoding="utf-8"?>\n'
            f'<restingecgdata xmlns="http://www3.medical.philips.com">'
            f'<documentinfo><documentversion>{version}</documentversion></documentinfo>'
            f'<internalmeasurements><crossleadmeasurements>{means}'
            f'<pfrontaxis>40</pfrontaxis><qrsfrontaxis>0</qrsfrontaxis>'
            f'<tfrontaxis>35</tfrontaxis></crossleadmeasurements>'
            f'<groupmeasurements><groupmeasurement><meanprint>152</meanprint>'
            f'</groupmeasurement></groupmeasurements>'
            f'<leadmeasurements>{per_lead}</leadmeasurements></internalmeasurements>'
            f'<interpretations><interpretation><globalmeasurements>{glob}</globalmeasurements>'
            f'<mdsignatureline>Unconfirmed Diagnosis</mdsignatureline>{stmts}'
            f'</interpretation></interpretations>'
            f'<waveforms><parsedwaveforms dataencoding="Base64" compression="Uncompressed" '
            f'numberofleads="12" leadlabels="{" ".join(LEADS)}" durationperchannel="10000" '
            f'samplespersecond="500" resolution="5">{wave}</parsedwaveforms></waveforms>'
            f'</restingecgdata>')


GLOBAL = {'heartrate': 72, 'rrint': 833, 'print': 152, 'qrsdur': 98, 'qtint': 398,
          'qtcb': 417, 'qtcf': 410, 'pfrontaxis': 41, 'qrsfrontaxis': 0, 'tfrontaxis': 36}


def cardiosoft_xml(diagnosis, measures='<VentricularRate units="BPM">50</VentricularRate>'):
    """A GE CardioSoft CardiologyXML: StripData (12 leads, text samples),
    Interpretation/Diagnosis lines, RestingECGMeasurements."""
    d = digital_12(fs=500, seed=4)
    strip = ''.join(f'<WaveformData lead="{lead}">{",".join(map(str, col))}</WaveformData>'
                    for lead, col in zip(LEADS, d.T))
    lines = ''.join(f'<DiagnosisText>{t}</DiagnosisText>' for t in diagnosis)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<CardiologyXML>'
            f'<Interpretation><Diagnosis>{lines}</Diagnosis></Interpretation>'
            f'<RestingECGMeasurements>{measures}</RestingECGMeasurements>'
            f'<StripData><SampleRate>500</SampleRate><Resolution>2.5</Resolution>{strip}'
            f'</StripData></CardiologyXML>')


def muse_with(measures, statements):
    """A MUSE XML (test_formats.muse_xml) whose 12SL block holds `measures`
    and whose Diagnosis holds `statements`, one line each."""
    d = digital_12(fs=500, seed=5)[:, [0, 1, 6, 7, 8, 9, 10, 11]]
    xml = muse_xml(d)
    block = ''.join(f'<{tag}>{v}</{tag}>' for tag, v in measures.items())
    xml = xml.replace('<VentricularRate>72</VentricularRate><QRSDuration>88</QRSDuration>',
                      block)
    diag = ''.join(f'<DiagnosisStatement><StmtText>{s}</StmtText><StmtFlag>ENDSLINE</StmtFlag>'
                   f'</DiagnosisStatement>' for s in statements)
    return xml.replace('<DiagnosisStatement><StmtText>Sinus rhythm</StmtText><StmtFlag>ENDSLINE'
                       '</StmtFlag></DiagnosisStatement>', diag)


def dicom_with(path, annotations, texts=()):
    """test_formats.write_dicom's 12-lead file with its annotations replaced:
    [(scheme, code, meaning, value)] numeric ones, `texts` as statements."""
    import pydicom
    from pydicom.dataset import Dataset
    with warnings.catch_warnings():  # write_dicom's invalid UID: pydicom warns on writing
        warnings.simplefilter('ignore')
        write_dicom(path, digital_12(fs=500, seed=6), 500, median=False)
        ds = pydicom.dcmread(str(path))
        notes = []
        for text in texts:
            a = Dataset()
            a.UnformattedTextValue = text
            notes.append(a)
        for scheme, code, meaning, value in annotations:
            a, cn = Dataset(), Dataset()
            cn.CodeValue, cn.CodingSchemeDesignator, cn.CodeMeaning = code, scheme, meaning
            a.ConceptNameCodeSequence, a.NumericValue = [cn], value
            a.ReferencedWaveformChannels = [1, 0]  # all channels: a global measurement
            notes.append(a)
        ds.WaveformAnnotationSequence = notes
        ds.save_as(str(path))
    return path


# A GE MUSE-to-DICOM conversion's global measurements, coded in MDC (DICOM PS3.16
# CID 3689, 3227, 3229; MDC_ECG_HEART_RATE).
MDC_CODED = [('MDC', '2:16770', 'Heart rate', 64), ('MDC', '2:15872', 'PR interval, global', 0),
             ('MDC', '2:16156', 'QRS duration, global', 96),
             ('MDC', '2:16160', 'QT interval, global', 402),
             ('MDC', '2:15876', 'QTc interval, global', 415),
             ('MDC', '2:16128', 'P axis', 0), ('MDC', '2:16132', 'QRS axis', -12),
             ('MDC', '2:16136', 'T axis', 44)]


# --------------------------------------------------------------------------
# One table of the vendors' codes.

def test_every_vendor_code_maps_to_a_device_key():
    for vendor, table in VENDOR_CODES.items():
        assert set(table.values()) <= set(DEVICE_KEYS), vendor
    # the DICOM table holds the MDC codes beside the SCPECG ones, for every key
    mdc = {k for c, k in VENDOR_CODES['dicom'].items() if c.startswith('2:')}
    assert mdc == set(DEVICE_KEYS)


# --------------------------------------------------------------------------
# Philips: the interpretation's global figures, never one lead's.

@pytest.mark.parametrize('cross_lead', [True, False])
def test_philips_reads_the_interpretations_global_measurements(tmp_path, cross_lead):
    path = tmp_path / 'visit.xml'
    path.write_text(philips_xml(GLOBAL, [('Sinus rhythm', 'normal P axis, V-rate 50-99')],
                                cross_lead=cross_lead))
    rec = read_record(path)
    # not lead I's 86 / 392 / 140 (met first in the file without the cross-lead
    # means), nor the cross-lead block's QTc of 416
    assert rec.device_measurements == {'hr': 72, 'pr_ms': 152, 'qrs_ms': 98, 'qt_ms': 398,
                                       'qtc_ms': 417, 'p_axis': 41, 'qrs_axis': 0,
                                       't_axis': 36}
    assert rec.device_statements == ['Sinus rhythm, normal P axis, V-rate 50-99']


def test_philips_without_an_interpretation_block_reads_the_cross_lead_one(tmp_path):
    path = tmp_path / 'visit.xml'
    path.write_text(philips_xml({}, []))
    assert read_record(path).device_measurements == {
        'hr': 71, 'pr_ms': 150, 'qrs_ms': 97, 'qt_ms': 397, 'qtc_ms': 416, 'p_axis': 40,
        'qrs_axis': 0, 't_axis': 35}


def test_philips_failed_analysis_is_said_not_measured(tmp_path):
    failed = {'heartrate': 0, 'rrint': 0, 'print': 0, 'qrsdur': 0, 'qtint': 0, 'qtcb': 0,
              'pfrontaxis': -1, 'qrsfrontaxis': -1, 'tfrontaxis': -1}
    path = tmp_path / 'visit.xml'
    path.write_text(philips_xml(failed, [('All 12 leads are missing', '')], lead_meas=False,
                                cross_lead=False))
    rec = read_record(path)
    assert rec.device_measurements == {}
    assert rec.device_statements == ['the cart did not measure: All 12 leads are missing']


def test_real_philips_files_give_the_printed_global_values(shared_data):
    root = shared_data / 'formats' / 'philips_sierra_xml'
    got = {p.name: read_record(p).device_measurements for p in
           (root / '2020-5-18_15-48-11.xml', root / '3191723_ZZDEMOPTONLY_1-04_orig.xml',
            root / 'simulator' / '129DYPRG.XML')}
    # each file's interpretation/globalmeasurements (1.04) or interpretationmeasurements
    # (1.03); 3191723's QTc is the printed 417, not the internal block's 416
    assert got == {
        '2020-5-18_15-48-11.xml': {'hr': 64, 'pr_ms': 164, 'qrs_ms': 102, 'qt_ms': 399,
                                   'qtc_ms': 412, 'p_axis': 27, 'qrs_axis': 22, 't_axis': 80},
        '3191723_ZZDEMOPTONLY_1-04_orig.xml': {'hr': 84, 'pr_ms': 144, 'qrs_ms': 84,
                                               'qt_ms': 352, 'qtc_ms': 417, 'p_axis': 81,
                                               'qrs_axis': 78, 't_axis': 67},
        '129DYPRG.XML': {'hr': 41, 'pr_ms': 151, 'qrs_ms': 135, 'qt_ms': 476, 'qtc_ms': 393,
                         'p_axis': 66, 'qrs_axis': -21, 't_axis': 59}}


# --------------------------------------------------------------------------
# DICOM: MDC-coded measurements.

def test_dicom_mdc_coded_measurements_are_read(tmp_path):
    rec = read_record(dicom_with(tmp_path / 'visit.dcm', MDC_CODED))
    # PR 0 is "not measured"; the P axis of 0 degrees is an axis
    assert rec.device_measurements == {'hr': 64, 'qrs_ms': 96, 'qt_ms': 402, 'qtc_ms': 415,
                                       'p_axis': 0, 'qrs_axis': -12, 't_axis': 44}


def test_dicom_mdc_rr_interval_gives_the_rate(tmp_path):
    rec = read_record(dicom_with(tmp_path / 'visit.dcm', [
        ('MDC', '2:16000', 'RR interval, global', 1000), ('MDC', '2:15872', 'PR', 160)]))
    assert rec.device_measurements == {'hr': 60.0, 'pr_ms': 160}


# --------------------------------------------------------------------------
# 0 is "not measured" for intervals and the rate, per key.

def test_zero_interval_is_not_measured_but_zero_axis_is_kept(tmp_path):
    path = tmp_path / 'visit.xml'
    path.write_text(muse_with({'VentricularRate': 112, 'PRInterval': 0, 'QRSDuration': 84,
                               'QTInterval': 0, 'QTCorrected': 0, 'PAxis': 0, 'RAxis': 0,
                               'TAxis': -5}, ['Atrial fibrillation']))
    rec = read_record(path)
    assert rec.device_measurements == {'hr': 112, 'qrs_ms': 84, 'p_axis': 0, 'qrs_axis': 0,
                                       't_axis': -5}
    path.write_text(muse_with({'VentricularRate': 0, 'QRSDuration': 0}, []))
    assert read_record(path).device_measurements == {}


# --------------------------------------------------------------------------
# CardioSoft: the full-disclosure summary after '---' is no statement.

def test_cardiosoft_lines_after_the_separator_are_dropped(tmp_path):
    path = tmp_path / 'visit.xml'
    path.write_text(cardiosoft_xml(['Sinus bradycardia', 'Otherwise normal ECG', '---',
                                    'Arrhythmia results of the full-disclosure ECG',
                                    '   QRS Complexes: 4']))
    rec = read_record(path)
    assert rec.device_statements == ['Sinus bradycardia', 'Otherwise normal ECG']
    assert rec.device_measurements == {'hr': 50}


def test_real_cardiosoft_statements(shared_data):
    rec = read_record(shared_data / 'formats' / 'ge_cardiosoft_xml' /
                      'ecgprocess_example-XML1.xml')
    assert rec.device_statements == ['Sinus bradycardia', 'Otherwise normal ECG']
    assert rec.device_measurements['pr_ms'] == 174  # PQInterval, VENDOR_CODES['cardiosoft']


# --------------------------------------------------------------------------
# Staff names: the statement stays, the name goes.

@pytest.mark.parametrize('text, kept', [
    (CONFIRMED, f'Confirmed by {NAME_REMOVED}'),
    (f'Reviewed by: Dr. {STAFF}', f'Reviewed by {NAME_REMOVED}'),
    (f'Edited by {STAFF}', f'Edited by {NAME_REMOVED}'),
    (f'Technician: {GIVEN} {STAFF}', f'Technician: {NAME_REMOVED}'),
    (f'Referring physician: {STAFF}', f'Referring physician: {NAME_REMOVED}'),
    ('ST elevation, probably due to LVH', 'ST elevation, probably due to LVH'),
    ('Unconfirmed Diagnosis', 'Unconfirmed Diagnosis'),
])
def test_without_staff_names(text, kept):
    assert without_staff_names(text) == kept


def test_every_reader_drops_staff_names(tmp_path):
    muse = tmp_path / 'muse.xml'
    muse.write_text(muse_with({'VentricularRate': 60}, ['Sinus rhythm', CONFIRMED]))
    philips = tmp_path / 'philips.xml'
    philips.write_text(philips_xml(GLOBAL, [('Sinus rhythm', ''), (CONFIRMED, '')]))
    cardiosoft = tmp_path / 'cardiosoft.xml'
    cardiosoft.write_text(cardiosoft_xml(['Sinus rhythm', f'Technician: {STAFF}']))
    dicom = dicom_with(tmp_path / 'dicom.dcm', [], texts=['Sinus rhythm', CONFIRMED])
    got = {p.stem: read_record(p).device_statements for p in (muse, philips, cardiosoft, dicom)}
    assert got == {'muse': ['Sinus rhythm', f'Confirmed by {NAME_REMOVED}'],
                   'philips': ['Sinus rhythm', f'Confirmed by {NAME_REMOVED}'],
                   'cardiosoft': ['Sinus rhythm', f'Technician: {NAME_REMOVED}'],
                   'dicom': ['Sinus rhythm', f'Confirmed by {NAME_REMOVED}']}


def staffed_files(tmp_path):
    """Three files carrying the physician's name in their statements, one
    named by its patient ID, and one broken (no waveform) that names it too."""
    muse = tmp_path / 'visit.xml'
    muse.write_text(muse_with({'VentricularRate': 60, 'PRInterval': 0},
                              ['Sinus rhythm', CONFIRMED]))
    named = tmp_path / f'{PID}.xml'
    named.write_text(muse_with({'VentricularRate': 61}, [CONFIRMED]))
    dicom = dicom_with(tmp_path / 'ward.dcm', MDC_CODED, texts=[f'Edited by {STAFF}'])
    broken = tmp_path / 'broken.xml'
    broken.write_text(f'<RestingECG><Diagnosis><DiagnosisStatement><StmtText>{CONFIRMED}'
                      f'</StmtText></DiagnosisStatement></Diagnosis></RestingECG>')
    return [muse, named, dicom, broken]


def test_staff_names_never_reach_predict_output(all_leads_model, tmp_path, capsys, caplog):
    files = staffed_files(tmp_path)
    out_csv = tmp_path / 'p.csv'
    capsys.readouterr()
    df = run(all_leads_model, *files, extra=['--out', str(out_csv)])
    out, err = capsys.readouterr()
    text = out + err + out_csv.read_text() + caplog.text
    for secret in (STAFF, GIVEN, PID):
        assert secret.lower() not in text.lower()
    rows = df.set_index('record')
    assert rows.loc['visit', 'device_statements'] == f'Sinus rhythm | Confirmed by {NAME_REMOVED}'
    assert np.isnan(rows.loc['visit', 'device_pr_ms'])  # PR 0: not measured
    assert rows.loc['ward', 'device_qt_ms'] == 402 and rows.loc['ward', 'device_p_axis'] == 0
    assert 'skipped broken: ' in err


def test_staff_names_never_reach_the_uploads_problem_lines(tmp_path):
    """The app and the API read uploads through records.uploads: neither the
    readings they show nor their problem lines carry the name."""
    files = [(p.name, p.read_bytes()) for p in staffed_files(tmp_path)]
    readings, problems = uploads.load_uploads(files, LEADS, 1000)
    assert len(readings) == 3 and len(problems) == 1
    text = ' '.join(map(str, problems)) + ' '.join(
        f'{r.name} {r.source} {r.record.device_statements}' for r in readings)
    for secret in (STAFF, GIVEN, PID):
        assert secret.lower() not in text.lower()
    assert f'Confirmed by {NAME_REMOVED}' in text


# --------------------------------------------------------------------------
# The path column never names a file that does not exist.

def test_path_column_of_a_pseudonymous_record_is_empty(all_leads_model, shared_data, tmp_path):
    named = tmp_path / f'{PID}.xml'
    named.write_text(muse_with({'VentricularRate': 61}, ['Sinus rhythm']))
    plain = tmp_path / 'visit.xml'
    plain.write_text(muse_with({'VentricularRate': 62}, ['Sinus rhythm']))
    ishne = shared_data / 'formats' / 'ishne_holter' / 'ECG_P28.01.ecg'  # its stem is its ID
    out_csv = tmp_path / 'p.csv'
    run(all_leads_model, named, plain, ishne, extra=['--out', str(out_csv)])
    df = pd.read_csv(out_csv, keep_default_na=False)
    paths = dict(zip(df['record'], df['path']))
    assert paths['visit'] == str(plain)
    pseudonyms = [r for r in paths if r != 'visit']
    assert sorted(r.split('-')[0] for r in pseudonyms) == ['ishne', 'muse']
    assert all(paths[r] == '' for r in pseudonyms)
    assert PID not in out_csv.read_text() and 'ECG_P28' not in out_csv.read_text()
