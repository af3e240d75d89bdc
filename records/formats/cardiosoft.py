"""GE CardioSoft CardiologyXML."""
import warnings
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age, _budget, _num, _parse_xml, _record, _sex, _text
from records.formats.common import record_name
from records.formats.muse import _ge_measurements, _stack

# --------------------------------------------------------------------------
# GE CardioSoft CardiologyXML (UK Biobank).


def _numbers(text, name, what):
    """Comma- or space-separated numbers -> float64 array, parsed by numpy in
    C (a Python float per value cost 30x the text in memory)."""
    text = (text or '').replace(',', ' ').strip()
    if not text:
        return np.zeros(0)
    with warnings.catch_warnings():
        # numpy warns, and stops, at the first value it cannot read
        warnings.simplefilter('error', DeprecationWarning)
        try:
            return np.fromstring(text, dtype=np.float64, sep=' ')
        except (ValueError, DeprecationWarning):
            raise RecordError(name, f'non-numeric sample in {what}') from None


def read_cardiosoft(path):
    """GE CardioSoft CardiologyXML: StripData (the 10-s 12-lead strip, text
    samples at Resolution uV/LSB) is the record; FullDisclosure, where
    present, is rec.full_disclosure, a longer Record of its own."""
    root = _parse_xml(path, 'cardiosoft')
    name = Path(path).stem
    strip = root.find('StripData')
    if strip is None:
        raise RecordError(name, f'{Path(path).name}: CardiologyXML without StripData')
    fs = _num(_text(strip, 'SampleRate')) or 500.0
    res = _num(_text(strip, 'Resolution')) or 1.0
    _budget(name, path, fs=fs, leads=len(strip.findall('WaveformData')) or None,
            what='CardiologyXML StripData')
    names, cols = [], []
    for w in strip.findall('WaveformData'):
        names.append(w.get('lead', f'lead {len(names) + 1}'))
        cols.append(_numbers(w.text, name, f'lead {names[-1]}') * res)
    if not cols:
        raise RecordError(name, 'CardiologyXML StripData holds no WaveformData')
    info = root.find('PatientInfo')
    age = _age(_text(info, 'Age'), info.find('Age').get('units') if info is not None and
               info.find('Age') is not None else None) if info is not None else float('nan')
    sex = _sex(_text(info, 'Gender')) if info is not None else 'Unknown'
    ids = [_text(info, p) for p in ('PID', 'Name/FamilyName', 'Name/GivenName')] \
        if info is not None else []
    meas = _ge_measurements(root, 'cardiosoft')
    statements = _cardiosoft_statements(root)
    rname = record_name(path, 'cardiosoft', ids)
    fd = root.find('FullDisclosure')
    full = _cardiosoft_full(fd, path, rname, name, age, sex) if fd is not None else None
    return _record(path, rname, fs, _stack(cols, name, path), names,
                   ['uV'] * len(names),
                   'cardiosoft', age, sex, measurements=meas, statements=statements,
                   full_disclosure=full)


def _cardiosoft_statements(root):
    """The 12SL statements of Interpretation/Diagnosis: the lines before a
    line of dashes ('---'). What follows it is the full-disclosure arrhythmia
    summary ('Arrhythmia results of the full-disclosure ECG', 'QRS
    Complexes: 4'), counts over the whole recording, not statements."""
    out = []
    for t in root.findall('Interpretation/Diagnosis/DiagnosisText'):
        s = (t.text or '').strip()
        if s and set(s) == {'-'}:
            break
        if s:
            out.append(s)
    return out


def _cardiosoft_full(fd, path, rname, name, age, sex):
    """FullDisclosureData: the leads of LeadOrder interleaved in blocks of one
    second (SampleRate values of lead 1, then lead 2, ...), text."""
    fs = _num(_text(fd, 'SampleRate')) or 500.0
    res = _num(_text(fd, 'Resolution')) or 1.0
    names = [s.strip() for s in (_text(fd, 'LeadOrder') or '').split(',') if s.strip()]
    data = fd.find('FullDisclosureData')
    if not names or data is None:
        return None
    _budget(name, path, fs=fs, leads=len(names), what='CardiologyXML FullDisclosure')
    x = _numbers(data.text, name, 'FullDisclosureData') * res
    block = int(fs)
    n = len(x) // (block * len(names))
    if n == 0:
        return None
    sig = x[:n * block * len(names)].reshape(n, len(names), block).transpose(0, 2, 1)
    return _record(path, rname + '-full', fs, sig.reshape(-1, len(names)), names,
                   ['uV'] * len(names), 'cardiosoft', age, sex)
