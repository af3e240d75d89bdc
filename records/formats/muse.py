"""GE MUSE RestingECG XML."""
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age, _b64, _num, _parse_xml, _record, _sex, _text, record_name

# --------------------------------------------------------------------------
# GE MUSE RestingECG.

MUSE_MEASURES = {'VentricularRate': 'hr', 'PRInterval': 'pr_ms', 'QRSDuration': 'qrs_ms',
                 'QTInterval': 'qt_ms', 'QTCorrected': 'qtc_ms', 'PAxis': 'p_axis',
                 'RAxis': 'qrs_axis', 'TAxis': 't_axis'}


def _ge_measurements(root, table):
    """GE 12SL's RestingECGMeasurements (MUSE and CardioSoft name the same
    block alike) -> {device key: number} for the tags in `table` present."""
    m = root.find('RestingECGMeasurements')
    if m is None:
        return {}
    values = {key: _num(_text(m, tag)) for tag, key in table.items()}
    return {k: v for k, v in values.items() if v is not None}


def read_muse(path):
    """GE MUSE RestingECG XML: the Rhythm waveform's stored leads (usually
    I, II, V1-V6: records.prepare derives III, aVR, aVL, aVF), base64 int16
    little-endian, LeadAmplitudeUnitsPerBit in LeadAmplitudeUnits; the
    Median waveform is kept apart (rec.median). 12SL measurements and the
    Diagnosis statements (a statement continues until its ENDSLINE flag)."""
    root = _parse_xml(path)
    name = Path(path).stem
    waves = {(_text(w, 'WaveformType') or '').lower(): w for w in root.findall('Waveform')}
    wave = waves.get('rhythm')
    if wave is None:
        raise RecordError(name, f'{Path(path).name}: MUSE XML without a Rhythm waveform')
    fs, names, cols, units = _muse_leads(wave, name)
    sig = np.column_stack(_pad(cols))
    demo = root.find('PatientDemographics')
    age = _age(_text(demo, 'PatientAge'), _text(demo, 'AgeUnits')) if demo is not None \
        else float('nan')
    sex = _sex(_text(demo, 'Gender')) if demo is not None else 'Unknown'
    meas = _ge_measurements(root, MUSE_MEASURES)
    ids = [_text(demo, t) for t in ('PatientID', 'PatientLastName', 'PatientFirstName')] \
        if demo is not None else []
    median = None
    if 'median' in waves:
        try:
            mfs, mnames, mcols, munits = _muse_leads(waves['median'], name)
            median = {'fs': mfs, 'leads': mnames, 'units': munits,
                      'signal': np.column_stack(_pad(mcols))}
        except RecordError:
            pass  # a broken median beat does not spoil the rhythm
    return _record(path, record_name(path, 'muse', ids), fs, sig, names, units, 'muse', age,
                   sex, measurements=meas, statements=_muse_statements(root.find('Diagnosis')),
                   median=median)


def _pad(cols):
    n = max(len(c) for c in cols)
    return [np.pad(c.astype(np.float64), (0, n - len(c)), constant_values=np.nan) for c in cols]


def _muse_leads(wave, name):
    fs = _num(_text(wave, 'SampleBase')) or 500.0
    fs *= 10 ** (_num(_text(wave, 'SampleExponent')) or 0)
    names, cols, units = [], [], []
    for lead in wave.findall('LeadData'):
        raw = _b64(_text(lead, 'WaveFormData', ''), name, f"MUSE lead {_text(lead, 'LeadID')}")
        if len(raw) < 2:
            continue
        x = np.frombuffer(raw[:len(raw) // 2 * 2], '<i2').astype(np.float64)
        x *= _num(_text(lead, 'LeadAmplitudeUnitsPerBit')) or 1.0
        unit = (_text(lead, 'LeadAmplitudeUnits') or 'MICROVOLTS').upper()
        names.append(_text(lead, 'LeadID') or f'lead {len(names) + 1}')
        cols.append(x)
        units.append({'MICROVOLTS': 'uV', 'MILLIVOLTS': 'mV', 'VOLTS': 'V'}.get(unit, unit))
    if not cols:
        raise RecordError(name, 'MUSE waveform holds no lead data')
    return fs, names, cols, units


def _muse_statements(diag):
    out, line = [], []
    for st in diag.findall('DiagnosisStatement') if diag is not None else []:
        text = _text(st, 'StmtText')
        if text:
            line.append(text)
        flags = {(f.text or '').strip().upper() for f in st.findall('StmtFlag')}
        if 'ENDSLINE' in flags and line:
            out.append(' '.join(line))
            line = []
    if line:
        out.append(' '.join(line))
    return out
