"""DICOM waveforms (12-lead, General ECG, Ambulatory, Hemodynamic)."""
import re
from pathlib import Path

from records.errors import RecordError
from records.formats.common import SCP_LEADS, _age, _budget, _num, _record, _sex, lead_name
from records.formats.common import record_name
from records.limits import MAX_DICOM_BYTES
from records.measurements import RR_CODES, VENDOR_CODES

# --------------------------------------------------------------------------
# DICOM waveforms (pydicom).

DICOM_ECG = {'1.2.840.10008.5.1.4.1.1.9.1.1': '12-lead ECG',
             '1.2.840.10008.5.1.4.1.1.9.1.2': 'General ECG',
             '1.2.840.10008.5.1.4.1.1.9.1.3': 'Ambulatory ECG',
             '1.2.840.10008.5.1.4.1.1.9.2.1': 'Hemodynamic'}


def _dicom_lead(ch):
    """A channel's lead from its source code (SCPECG 5.6.3-9-N, MDC 2:N or
    MDC_ECG_LEAD_*), else from the code meaning; None for no ECG lead."""
    src = ch.get('ChannelSourceSequence')
    if not src:
        return None, ch.get('ChannelLabel', '')
    code = str(src[0].get('CodeValue', ''))
    meaning = str(src[0].get('CodeMeaning', '')) or code
    m = re.fullmatch(r'(?:5\.6\.3-9-|2:)(\d+)', code)
    if m and int(m.group(1)) in SCP_LEADS:
        return SCP_LEADS[int(m.group(1))], meaning
    return lead_name(code) or lead_name(meaning), meaning


def read_dicom(path):
    """DICOM Waveform Storage (12-lead, General ECG, Ambulatory, Hemodynamic):
    the rhythm multiplex group (not one labelled MEDIAN/DERIVED, which is
    kept apart as rec.median), samples with Channel Sensitivity x Correction
    Factor + Baseline applied (pydicom's waveform_array) in each channel's
    sensitivity units; leads from the channel source codes (a Hemodynamic
    file's pressure channels are ignored and named). Measurements and
    statements from the WaveformAnnotationSequence."""
    # here, not on top: pydicom takes 0.15 s to import, for DICOM files only
    import pydicom
    from pydicom.errors import InvalidDicomError
    name = Path(path).stem
    size = Path(path).stat().st_size
    if size > MAX_DICOM_BYTES:
        raise RecordError(name, f'{Path(path).name} is {size / 2 ** 20:.1f} MB, over the '
                                f'{MAX_DICOM_BYTES >> 20} MB a DICOM ECG can be')
    # pydicom's validation warnings quote the offending value (a UID, a name):
    # identifiers must not reach a log, so values are not validated here.
    mode = pydicom.config.settings.reading_validation_mode
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    try:
        return _read_dicom(pydicom.dcmread(str(path)), path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as e:
        raise RecordError(name, f'{Path(path).name}: unreadable DICOM '
                                f'({type(e).__name__})') from None
    finally:
        pydicom.config.settings.reading_validation_mode = mode


def _read_dicom(ds, path):
    sop = str(ds.get('SOPClassUID', ''))
    ids = [str(ds.get(t, '') or '') for t in ('SOPInstanceUID', 'PatientID', 'PatientName',
                                                'StudyInstanceUID', 'AccessionNumber')]
    rname = record_name(path, 'dicom', ids)
    if 'WaveformSequence' not in ds or not ds.WaveformSequence:
        what = DICOM_ECG.get(sop) or getattr(ds.get('SOPClassUID'), 'name', sop or 'unknown')
        raise RecordError(rname, f'DICOM ({what}) holds no waveform')
    if sop and sop not in DICOM_ECG and not sop.startswith('1.2.840.10008.5.1.4.1.1.9.'):
        raise RecordError(rname, f'DICOM {getattr(ds.SOPClassUID, "name", sop)} is not an ECG '
                                 f'waveform')
    groups = list(ds.WaveformSequence)
    labels = [str(g.get('MultiplexGroupLabel', '')).upper() for g in groups]
    median = [i for i, lab in enumerate(labels) if 'MEDIAN' in lab or 'BEAT' in lab]
    rhythm = [i for i in range(len(groups)) if i not in median]
    if not rhythm:
        raise RecordError(rname, 'DICOM holds only a median-beat waveform, no rhythm')
    idx = max(rhythm, key=lambda i: int(groups[i].get('NumberOfWaveformSamples', 0)))
    fs, names, leads, units, sig, ignored = _dicom_group(ds, idx, rname)
    if not any(leads):
        raise RecordError(rname, f"DICOM waveform has no ECG channel (channels: "
                                 f"{', '.join(names)})")
    keep = [j for j, lead in enumerate(leads) if lead] if sop.endswith('9.2.1') else \
        list(range(len(names)))
    ignored += [names[j] for j in range(len(names)) if j not in keep]
    meas, statements = _dicom_annotations(ds)
    beat = None
    if median:
        # The median beat is the cart's summary, not what the model reads: a
        # broken one is dropped with one line (rec.ignored), as MUSE does,
        # and the rhythm is read.
        try:
            mfs, mnames, _, munits, msig, _ = _dicom_group(ds, median[0], rname)
            beat = {'fs': mfs, 'leads': mnames, 'units': munits, 'signal': msig}
        except Exception as e:  # noqa: BLE001 (pydicom raises many types for damaged data)
            why = e.reason if isinstance(e, RecordError) else f'{type(e).__name__}: {e}'
            ignored = ignored + [f'median beat (unreadable, dropped: {why})']
    return _record(path, rname, fs, sig[:, keep], [names[j] for j in keep],
                   [units[j] for j in keep], 'dicom', _age(*_dicom_age(ds.get('PatientAge'))),
                   _sex(ds.get('PatientSex')), leads=[leads[j] for j in keep],
                   measurements=meas, statements=statements, ignored=ignored, median=beat)


def _dicom_age(text):
    m = re.fullmatch(r'(\d{1,3})([DWMY])', str(text or '').strip())
    return (m.group(1), {'D': 'days', 'W': 'weeks', 'M': 'months', 'Y': 'years'}[m.group(2)]) \
        if m else (None, None)


def _dicom_group(ds, idx, rname):
    g = ds.WaveformSequence[idx]
    try:
        nch = int(g.get('NumberOfWaveformChannels', 0))
        n = int(g.get('NumberOfWaveformSamples', 0))
    except (TypeError, ValueError):
        raise RecordError(rname, f'DICOM waveform {idx + 1}: unreadable channel or sample '
                                 f'count') from None
    # the file's name only where it is the record's (a UID-named file is hashed)
    shown = ds.filename if ds.filename and Path(ds.filename).stem == rname else rname
    _budget(rname, shown, leads=nch, values=nch * n, what=f'DICOM waveform {idx + 1}')
    try:
        sig = ds.waveform_array(idx)
    except Exception as e:  # noqa: BLE001 (pydicom raises many types for damaged data)
        raise RecordError(rname, f'DICOM waveform {idx + 1} unreadable: {e}') from None
    fs = float(g.get('SamplingFrequency', 0) or 0)
    if not fs > 0:
        raise RecordError(rname, f'DICOM waveform {idx + 1} has no sampling frequency')
    names, leads, units = [], [], []
    for ch in g.ChannelDefinitionSequence:
        lead, meaning = _dicom_lead(ch)
        names.append(lead or meaning or f'channel {len(names) + 1}')
        leads.append(lead)
        u = ch.get('ChannelSensitivityUnitsSequence')
        units.append(str(u[0].get('CodeValue', 'uV')) if u else 'uV')
    return fs, names, leads, units, sig, []


def _dicom_annotations(ds):
    meas, statements = {}, []
    for a in ds.get('WaveformAnnotationSequence', []):
        text = a.get('UnformattedTextValue')
        if text:
            statements.append(str(text).strip())
            continue
        cn = a.get('ConceptNameCodeSequence')
        if not cn or a.get('NumericValue') is None:
            continue
        code = str(cn[0].get('CodeValue', ''))
        meaning = str(cn[0].get('CodeMeaning', '')).lower()
        value = _num(a.NumericValue if not isinstance(a.NumericValue, (list, tuple))
                     else a.NumericValue[0])
        # SCPECG, LOINC or MDC ('2:15872') codes: records/measurements.py's VENDOR_CODES
        key = VENDOR_CODES['dicom'].get(code)
        if key is None and ('heart rate' in meaning or 'ventricular rate' in meaning):
            key = 'hr'
        if key and value is not None and key not in meas:
            meas[key] = value
        elif code in RR_CODES['dicom'] and value and 'hr' not in meas:  # RR interval, ms
            meas.setdefault('_rr', value)
    rr = meas.pop('_rr', None)
    if 'hr' not in meas and rr:
        meas['hr'] = round(60000.0 / rr, 1)
    return meas, statements
