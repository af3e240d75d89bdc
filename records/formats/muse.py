"""GE MUSE RestingECG XML."""
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age, _b64, _budget, _num, _parse_xml, _record, _sex, _text
from records.formats.common import record_name
from records.limits import FORMAT_MAX_VALUES
from records.measurements import vendor_values

# --------------------------------------------------------------------------
# GE MUSE RestingECG.

def _ge_measurements(root, vendor):
    """GE 12SL's RestingECGMeasurements (MUSE and CardioSoft name the same
    block alike) -> {device key: number}, by `vendor`'s codes in
    records/measurements.py's VENDOR_CODES."""
    m = root.find('RestingECGMeasurements')
    if m is None:
        return {}
    return vendor_values(vendor, lambda tag: _num(_text(m, tag)))


def read_muse(path):
    """GE MUSE RestingECG XML: the Rhythm waveform's stored leads (usually
    I, II, V1-V6: records.prepare derives III, aVR, aVL, aVF), base64 int16
    little-endian, LeadAmplitudeUnitsPerBit in LeadAmplitudeUnits; the
    Median waveform is kept apart (rec.median). 12SL measurements and the
    Diagnosis statements (a statement continues until its ENDSLINE flag)."""
    root = _parse_xml(path, 'muse')
    name = Path(path).stem
    waves = {(_text(w, 'WaveformType') or '').lower(): w for w in root.findall('Waveform')}
    wave = waves.get('rhythm')
    if wave is None:
        raise RecordError(name, f'{Path(path).name}: MUSE XML without a Rhythm waveform')
    fs, names, cols, units = _muse_leads(wave, name, path)
    sig = _stack(cols, name, path)
    demo = root.find('PatientDemographics')
    age = _age(_text(demo, 'PatientAge'), _text(demo, 'AgeUnits')) if demo is not None \
        else float('nan')
    sex = _sex(_text(demo, 'Gender')) if demo is not None else 'Unknown'
    meas = _ge_measurements(root, 'muse')
    ids = [_text(demo, t) for t in ('PatientID', 'PatientLastName', 'PatientFirstName')] \
        if demo is not None else []
    median = None
    if 'median' in waves:
        try:
            mfs, mnames, mcols, munits = _muse_leads(waves['median'], name, path)
            median = {'fs': mfs, 'leads': mnames, 'units': munits,
                      'signal': _stack(mcols, name, path)}
        except RecordError:
            pass  # a broken median beat does not spoil the rhythm
    return _record(path, record_name(path, 'muse', ids), fs, sig, names, units, 'muse', age,
                   sex, measurements=meas, statements=_muse_statements(root.find('Diagnosis')),
                   median=median)


def _stack(cols, name, path):
    """Leads of different lengths -> one float64 matrix (n, leads), NaN after
    each one's end, written in place (no padded copy per lead); its size
    (leads x the longest) is held to the budget first."""
    n = max(len(c) for c in cols)
    _budget(name, path, leads=len(cols), values=n * len(cols))
    out = np.full((n, len(cols)), np.nan)
    for j, c in enumerate(cols):
        out[:len(c), j] = c
    return out


def _muse_leads(wave, name, path):
    """A waveform's rate and leads; the rate, the number of leads and the
    padded size (leads x the longest, from the base64 text's length) are
    checked before any lead is decoded."""
    base = _num(_text(wave, 'SampleBase'))
    exp = _num(_text(wave, 'SampleExponent')) or 0
    # 10 ** 400 overflows: an exponent beyond +-9 is a rate of inf or 0 Hz
    fs = 500.0 if base is None else base * 10.0 ** exp if abs(exp) <= 9 else \
        base * (float('inf') if exp > 0 else 0.0)
    _budget(name, path, fs=fs)
    texts = [''.join(_text(lead, 'WaveFormData', '').split()) for lead in wave.findall('LeadData')]
    _budget(name, path, leads=len(texts) or None, what='MUSE waveform',
            values=len(texts) * max((len(t) // 4 * 3 // 2 for t in texts), default=0))
    names, cols, units = [], [], []
    for lead, text in zip(wave.findall('LeadData'), texts):
        raw = _b64(text, name, f"MUSE lead {_text(lead, 'LeadID')}", 2 * FORMAT_MAX_VALUES)
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
