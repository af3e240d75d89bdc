"""The ECG files hospitals and devices export, read into records.Record.

    from records import read_record
    rec = read_record('exports/ecg.dcm')     # or .xml, .scp, .ecg, .edf, .csv
    rec.leads, rec.fs, rec.device_measurements, rec.device_statements

records.read_record() recognises each format by its content (magic bytes,
XML root element, DICOM preamble, EDF header, ISHNE magic, SCP section
layout, a CSV header), not by its extension, and calls the one reader here:

    format      reader            library
    dicom       read_dicom        pydicom (12-lead, General ECG, Ambulatory,
                                  Hemodynamic Waveform Storage)
    muse        read_muse         defusedxml (GE MUSE RestingECG XML)
    cardiosoft  read_cardiosoft   defusedxml (GE CardioSoft CardiologyXML)
    philips     read_philips      defusedxml + sierraecg's LZW (PhilipsECG /
                                  SierraECG XML 1.03-1.04.02, XLI)
    aecg        read_aecg         defusedxml (HL7 aECG, FDA)
    scp         read_scp          by hand (SCP-ECG, EN 1064): no maintained
                                  Python library reads it (see docs/formats.md)
    ishne       read_ishne        by hand (ISHNE 1.0 Holter, a fixed header
                                  and interleaved int16; memory-mapped)
    edf         read_edf          pyedflib (EDF, EDF+, BDF)
    csv         read_csv          numpy (one column per lead, --fs or a time column)

Every reader returns a Record with the rate, the channel names as written
and their standard lead names (None for a channel that is no lead, e.g. an
EDF's 'Pleth' or a generic 'ECG': records.read_record's lead_map names it),
units, age and sex where the file gives them, and the cart's own
measurements and interpretation statements where present
(`device_measurements` with keys among DEVICE_KEYS, `device_statements`).
They are the manufacturer's algorithm, never the project's.

Patient data stays in the file: names, IDs, birth dates and physicians are
read by no reader (a birth date only to compute an age, then dropped). A
record is named by its file stem, or `<format>-<content hash>` when the stem
is itself an identifier (a DICOM SOP Instance UID, the patient's ID or name).
Untrusted XML is parsed by defusedxml: a DTD's entities or an external
entity refuse the file (billion laughs, XXE) instead of being expanded.
Every bad file raises records.RecordError naming the file and the reason.
"""
import base64
import hashlib
import re
import struct
from datetime import date
from pathlib import Path

import numpy as np

from records import Record, RecordError, canonical_lead

# The cart's global measurements, in ms, beats/min and degrees (PLAN.md contract).
DEVICE_KEYS = ('hr', 'pr_ms', 'qrs_ms', 'qt_ms', 'qtc_ms', 'p_axis', 'qrs_axis', 't_axis')

# Extensions of the formats here (lower case); the content decides, these only
# let a record finder pick the files out of a folder.
SUFFIXES = {'.dcm': 'dicom', '.dicom': 'dicom', '.xml': 'xml', '.scp': 'scp', '.ecg': 'ishne',
            '.edf': 'edf', '.bdf': 'edf', '.csv': 'csv'}
XML_ROOTS = {'RestingECG': 'muse', 'CardiologyXML': 'cardiosoft', 'restingecgdata': 'philips',
             'AnnotatedECG': 'aecg'}

# SCP-ECG / DICOM / MDC lead codes (SCP-ECG table 6, shared by MDC's
# MDC_ECG_LEAD_* numbering and DICOM's SCPECG 5.6.3-9-N and MDC 2:N codes).
SCP_LEADS = {1: 'I', 2: 'II', 3: 'V1', 4: 'V2', 5: 'V3', 6: 'V4', 7: 'V5', 8: 'V6',
             61: 'III', 62: 'aVR', 63: 'aVL', 64: 'aVF'}
# ISHNE 1.0 lead specification codes.
ISHNE_LEADS = {5: 'I', 6: 'II', 7: 'III', 8: 'aVR', 9: 'aVL', 10: 'aVF', 11: 'V1', 12: 'V2',
               13: 'V3', 14: 'V4', 15: 'V5', 16: 'V6'}

# Words exports put in empty name/ID fields: not identifiers of anyone.
PLACEHOLDERS = {'anonymous', 'anon', 'unknown', 'none', 'patient', 'xxxxxx', 'test', 'demo',
                'name', 'doctor', 'person name'}
MAX_XML_BYTES = 64 << 20   # a resting ECG's XML is < 5 MB; refuse before parsing a giant
HEAD = 4096


# --------------------------------------------------------------------------
# Recognising a file.

def _xml_root(head):
    """The root element's name of an XML file's first bytes, or None."""
    if head.startswith((b'\xff\xfe', b'\xfe\xff')):
        text = head.decode('utf-16', errors='ignore')
    elif head[:4] in (b'<\x00?\x00', b'<\x00<\x00'):
        text = head.decode('utf-16-le', errors='ignore')
    elif head[:4] in (b'\x00<\x00?', b'\x00<\x00<'):
        text = head.decode('utf-16-be', errors='ignore')
    else:
        text = head.decode('utf-8', errors='ignore').lstrip('\ufeff')
    text = text.lstrip()
    if not text.startswith('<'):
        return None
    # skip the declaration, comments, processing instructions and a DOCTYPE
    text = re.sub(r'<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^\[>]*(\[.*?\])?\s*>', '', text, flags=re.S)
    m = re.match(r'\s*<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)', text)
    return m.group(2) if m else None


def _looks_scp(head):
    """SCP-ECG: a record length, then section 0 (id 0) whose header is 16
    bytes with 'SCPECG' in its reserved field, or at least a section 0
    pointing at section 1 (the non-compliant variants some handhelds write)."""
    if len(head) < 32:
        return False
    sid, slen = struct.unpack('<HI', head[8:14])
    if sid != 0 or slen < 16:
        return False
    if head[16:22] == b'SCPECG':
        return True
    first = struct.unpack('<HI', head[22:28])
    return first[0] == 0 and struct.unpack('<H', head[32:34])[0] == 1


def sniff(path):
    """The format of a file by its content -> a key of the reader table
    ('dicom', 'muse', ...), 'xml:ROOT' for other XML, 'ishne-ann' for an
    ISHNE annotation file, None when nothing here recognises it."""
    with open(path, 'rb') as f:
        head = f.read(HEAD)
    if len(head) >= 132 and head[128:132] == b'DICM':
        return 'dicom'
    if head.startswith(b'ISHNE1.0'):
        return 'ishne'
    if head.startswith(b'ANN  1.0'):
        return 'ishne-ann'
    if head.startswith((b'0       ', b'\xffBIOSEMI')) and len(head) >= 256:
        return 'edf'
    root = _xml_root(head)
    if root is not None:
        return XML_ROOTS.get(root, 'xml:' + root)
    if _looks_scp(head):
        return 'scp'
    try:
        first = head.decode('utf-8-sig').splitlines()[0] if head else ''
    except UnicodeDecodeError:
        return None
    if re.search(r'[,;\t]', first) and re.search(r'[A-Za-z]', first):
        return 'csv'
    return None


def read(path, fmt=None, fs=None):
    """Read one file of a format here -> Record (RecordError otherwise).
    fmt: sniff()'s answer (sniffed when None); fs: the rate of a CSV
    without a time column."""
    path = Path(path)
    if not path.is_file():
        raise RecordError(path.stem, f'no such file {path}')
    fmt = fmt or sniff(path)
    readers = {'dicom': read_dicom, 'muse': read_muse, 'cardiosoft': read_cardiosoft,
               'philips': read_philips, 'aecg': read_aecg, 'scp': read_scp,
               'ishne': read_ishne, 'edf': read_edf}
    if fmt == 'csv':
        return read_csv(path, fs=fs)
    if fmt in readers:
        return readers[fmt](path)
    if fmt == 'ishne-ann':
        raise RecordError(path.stem, f'{path.name} is an ISHNE annotation file: read its '
                                     f'.ecg (the beats come with it)')
    if fmt and fmt.startswith('xml:'):
        raise RecordError(path.stem, f'{path.name} is XML with root <{fmt[4:]}>, not an ECG '
                                     f'format read here (GE MUSE RestingECG, GE CardioSoft '
                                     f'CardiologyXML, Philips restingecgdata, HL7 AnnotatedECG)')
    expected = SUFFIXES.get(path.suffix.lower())
    raise RecordError(path.stem, f'{path.name}: content is no ECG format read here'
                                 + (f' (its extension says {expected}, its content does not '
                                    f'match)' if expected else ''))


# --------------------------------------------------------------------------
# Helpers shared by the readers.

def lead_name(label):
    """A channel label as exports write it -> standard lead or None:
    'Lead I (Einthoven)', 'ECG II', 'EKG V1', 'MDC_ECG_LEAD_AVR', 'V5-Ref'."""
    text = str(label).strip()
    lead = canonical_lead(text)
    if lead:
        return lead
    text = re.sub(r'\(.*?\)', ' ', text)
    text = re.sub(r'^(MDC_ECG_LEAD_|ECG|EKG|Lead)[\s_:\-]*', '', text.strip(), flags=re.I)
    text = re.sub(r'[\s_\-]*(ref|-ref)$', '', text.strip(), flags=re.I)
    return canonical_lead(text.strip()) if text.strip() else None


def _hash_name(path, fmt):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return f'{fmt}-{h.hexdigest()[:12]}'


def safe_name(path, fmt, identifiers=()):
    """The file's stem, unless the stem is an identifier: a DICOM-style UID
    (digits and dots), or it contains one of the file's own identifiers
    (patient ID, name, SOP Instance UID) -> '<fmt>-<sha256 of the content>'."""
    stem = Path(path).stem
    low = stem.lower()
    ids = [str(i).strip().lower() for i in identifiers if i and len(str(i).strip()) >= 3
           and str(i).strip().lower() not in PLACEHOLDERS]
    words = {w for i in ids for w in re.split(r'[\s,^]+', i) if len(w) >= 3} - PLACEHOLDERS
    if re.fullmatch(r'[\d.]{16,}', stem) or any(i in low for i in ids) or \
            any(w in low for w in words):
        return _hash_name(path, fmt)
    return stem


def _record(path, name, fs, signal, names, units, fmt, age=float('nan'), sex='Unknown',
            leads=None, measurements=None, statements=None, ignored=()):
    """A Record over an in-memory signal (n, channels) in `units`."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[0] == 0 or signal.shape[1] == 0:
        raise RecordError(name, f'{Path(path).name}: no samples in the file ({fmt})')
    rec = Record(name, path, fs, len(signal), names, units, lambda a, b: signal[a:b],
                 age=age, sex=sex, dx=None, files=[Path(path)], fmts=[fmt] * len(names))
    rec.leads = [lead_name(n) for n in names] if leads is None else list(leads)
    rec.format = fmt
    rec.device_measurements = {k: float(v) for k, v in (measurements or {}).items()
                               if k in DEVICE_KEYS and v is not None and np.isfinite(v)}
    rec.device_statements = [s for s in (statements or []) if s]
    rec.ignored = list(ignored)
    return rec


def _num(text):
    try:
        v = float(str(text).strip())
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def _sex(text):
    t = str(text or '').strip().lower()
    return {'m': 'Male', 'male': 'Male', '1': 'Male', 'f': 'Female', 'female': 'Female',
            '2': 'Female'}.get(t, 'Unknown')


def _age(value, unit='years'):
    v = _num(value)
    if v is None:
        return float('nan')
    unit = str(unit or 'years').strip().lower()
    v = v / {'m': 12, 'months': 12, 'w': 52.18, 'weeks': 52.18, 'd': 365.25, 'days': 365.25,
             'h': 8766, 'hours': 8766}.get(unit, 1)
    return v if 0 <= v < 150 else float('nan')


def _age_between(born, on):
    """Whole years from a birth date to an acquisition date (each a date or
    None) -> float or NaN. The birth date is dropped after this."""
    if not born or not on or on < born:
        return float('nan')
    years = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return float(years) if 0 <= years < 150 else float('nan')


def _date(text):
    """'19530508...', '1951-01-01', '01-01-1900' -> date or None."""
    t = str(text or '').strip()
    for pat, order in ((r'(\d{4})-?(\d{2})-?(\d{2})', 'ymd'), (r'(\d{2})[-/](\d{2})[-/](\d{4})',
                                                                'mdy')):
        m = re.match(pat, t)
        if m:
            a, b, c = (int(g) for g in m.groups())
            y, mo, d = (a, b, c) if order == 'ymd' else (c, a, b)
            try:
                return date(y, mo, d)
            except ValueError:
                return None
    return None


# --------------------------------------------------------------------------
# XML (defusedxml).

def _parse_xml(path):
    """defusedxml's ElementTree of an untrusted file: entities, external
    entities and DTD tricks raise instead of expanding."""
    from xml.etree.ElementTree import ParseError

    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import parse
    name = Path(path).stem
    size = Path(path).stat().st_size
    if size > MAX_XML_BYTES:
        raise RecordError(name, f'{Path(path).name} is {size >> 20} MB, over the '
                                f'{MAX_XML_BYTES >> 20} MB an ECG XML can be')
    try:
        return parse(str(path), forbid_dtd=False, forbid_entities=True,
                     forbid_external=True).getroot()
    except DefusedXmlException as e:
        raise RecordError(name, f'{Path(path).name}: unsafe XML refused ({type(e).__name__}: '
                                f'entity declarations or external references)') from None
    except ParseError as e:
        raise RecordError(name, f'{Path(path).name}: malformed XML ({e})') from None


def _strip_ns(root):
    """Drop '{namespace}' from every tag (aECG and Philips use default namespaces)."""
    for el in root.iter():
        if isinstance(el.tag, str) and '}' in el.tag:
            el.tag = el.tag.split('}', 1)[1]
    return root


def _text(el, path, default=None):
    found = el.find(path)
    return found.text.strip() if found is not None and found.text else default


def _b64(text, name, what):
    try:
        return base64.b64decode(''.join((text or '').split()), validate=True)
    except ValueError:
        raise RecordError(name, f'bad base64 in {what}') from None


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
    rec = _record(path, safe_name(path, 'muse', ids), fs, sig, names, units, 'muse', age, sex,
                  measurements=meas, statements=_muse_statements(root.find('Diagnosis')))
    if 'median' in waves:
        try:
            mfs, mnames, mcols, munits = _muse_leads(waves['median'], name)
            rec.median = {'fs': mfs, 'leads': mnames, 'units': munits,
                          'signal': np.column_stack(_pad(mcols))}
        except RecordError:
            pass  # a broken median beat does not spoil the rhythm
    return rec


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


# --------------------------------------------------------------------------
# GE CardioSoft CardiologyXML (UK Biobank).

CS_MEASURES = {'VentricularRate': 'hr', 'PQInterval': 'pr_ms', 'QRSDuration': 'qrs_ms',
               'QTInterval': 'qt_ms', 'QTCInterval': 'qtc_ms', 'PAxis': 'p_axis',
               'RAxis': 'qrs_axis', 'TAxis': 't_axis'}


def _numbers(text, name, what):
    try:
        return np.array([float(v) for v in re.split(r'[,\s]+', (text or '').strip()) if v])
    except ValueError:
        raise RecordError(name, f'non-numeric sample in {what}') from None


def read_cardiosoft(path):
    """GE CardioSoft CardiologyXML: StripData (the 10-s 12-lead strip, text
    samples at Resolution uV/LSB) is the record; FullDisclosure, where
    present, is rec.full_disclosure, a longer Record of its own."""
    root = _parse_xml(path)
    name = Path(path).stem
    strip = root.find('StripData')
    if strip is None:
        raise RecordError(name, f'{Path(path).name}: CardiologyXML without StripData')
    fs = _num(_text(strip, 'SampleRate')) or 500.0
    res = _num(_text(strip, 'Resolution')) or 1.0
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
    meas = _ge_measurements(root, CS_MEASURES)
    statements = [(t.text or '').strip() for t in root.findall('Interpretation/Diagnosis/'
                                                                 'DiagnosisText')]
    statements = [s for s in statements if s and set(s) != {'-'}]
    rname = safe_name(path, 'cardiosoft', ids)
    rec = _record(path, rname, fs, np.column_stack(_pad(cols)), names, ['uV'] * len(names),
                  'cardiosoft', age, sex, measurements=meas, statements=statements)
    fd = root.find('FullDisclosure')
    if fd is not None:
        rec.full_disclosure = _cardiosoft_full(fd, path, rname, name, age, sex)
    return rec


def _cardiosoft_full(fd, path, rname, name, age, sex):
    """FullDisclosureData: the leads of LeadOrder interleaved in blocks of one
    second (SampleRate values of lead 1, then lead 2, ...), text."""
    fs = _num(_text(fd, 'SampleRate')) or 500.0
    res = _num(_text(fd, 'Resolution')) or 1.0
    names = [s.strip() for s in (_text(fd, 'LeadOrder') or '').split(',') if s.strip()]
    data = fd.find('FullDisclosureData')
    if not names or data is None:
        return None
    x = _numbers(data.text, name, 'FullDisclosureData') * res
    block = int(fs)
    n = len(x) // (block * len(names))
    if n == 0:
        return None
    sig = x[:n * block * len(names)].reshape(n, len(names), block).transpose(0, 2, 1)
    return _record(path, rname + '-full', fs, sig.reshape(-1, len(names)), names,
                   ['uV'] * len(names), 'cardiosoft', age, sex)


# --------------------------------------------------------------------------
# Philips PhilipsECG / SierraECG XML.

PHILIPS_MEASURES = {'heartrate': 'hr', 'meanventrate': 'hr', 'print': 'pr_ms',
                    'meanprint': 'pr_ms', 'qrsdur': 'qrs_ms', 'meanqrsdur': 'qrs_ms',
                    'qtint': 'qt_ms', 'meanqtint': 'qt_ms', 'qtcb': 'qtc_ms', 'meanqtc': 'qtc_ms',
                    'pfrontaxis': 'p_axis', 'qrsfrontaxis': 'qrs_axis', 'tfrontaxis': 't_axis'}
PHILIPS_LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6']


def xli_decode(data, name):
    """Philips XLI: per lead an 8-byte header (int32 size, int16 code,
    int16 first), an LZW stream (10-bit codes; sierraecg's decoder), then the
    bytes split in a high and a low half and second-order delta decoding.
    Done here in int64 with cumulative sums, so a value outside int16 (which
    makes sierraecg's element-wise int16 arithmetic raise) is kept."""
    from sierraecg.lzw import LzwDecoder
    leads, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], 'little', signed=True)
        first = int.from_bytes(data[offset + 6:offset + 8], 'little', signed=True)
        offset += 8
        if size <= 0 or offset + size > len(data):
            raise RecordError(name, f'XLI stream ends early (lead {len(leads) + 1} declares '
                                    f'{size} bytes, {len(data) - offset} left)')
        dec = LzwDecoder(data[offset:offset + size], bits=10)
        offset += size
        buf = bytearray()
        while (b := dec.read()) != -1:
            buf.append(b & 0xFF)
        if len(buf) % 2:
            buf.append(0)
        half = len(buf) // 2
        if half < 2:
            raise RecordError(name, f'XLI lead {len(leads) + 1} decodes to {half} samples')
        b = np.frombuffer(bytes(buf), np.uint8).astype(np.int64)
        d = ((b[:half] << 8) | b[half:]).astype(np.uint16).view(np.int16).astype(np.int64)
        # x[i] = 2 x[i-1] - x[i-2] - e[i], e[2] = first, e[i] = d[i-1] - 64
        e = np.empty(half, np.int64)
        e[:2] = 0
        e[2:3] = first
        e[3:] = d[2:-1] - 64
        x = np.empty(half, np.int64)
        x[:2] = d[:2]
        if half > 2:
            step = np.cumsum(np.r_[d[1] - d[0], -e[2:]])  # x[i] - x[i-1]
            x[1:] = d[0] + np.cumsum(step)
        leads.append(x)
    return leads


def read_philips(path):
    """Philips XML (SierraECG 1.03, PhilipsECG 1.04, 1.04.01, 1.04.02; UTF-16
    or UTF-8): parsedwaveforms, base64, XLI-compressed or not, at the
    signal resolution (uV/LSB). Leads III, aVR, aVL, aVF of a compressed
    file are stored as residues and rebuilt from I and II (as sierraecg
    does, in int64). The 1-s calibration pulse after the rhythm of an 11-s
    export is dropped. Global measurements and interpretation statements."""
    root = _strip_ns(_parse_xml(path))
    name = Path(path).stem
    version = _text(root, 'documentinfo/documentversion') or '?'
    pw = root.find('.//parsedwaveforms')
    if pw is None:
        raise RecordError(name, f'{Path(path).name}: Philips XML {version} without '
                                f'parsedwaveforms')
    sc = root.find('.//signalcharacteristics')
    fs = _num(pw.get('samplespersecond')) or _num(_text(sc, 'samplingrate')) or 500.0
    res = _num(pw.get('resolution')) or _num(_text(sc, 'resolution')) or \
        _num(_text(sc, 'signalresolution')) or 5.0
    labels = (pw.get('leadlabels') or '').split()
    nleads = int(_num(pw.get('numberofleads')) or _num(_text(sc, 'numberchannelsvalid')) or 12)
    kind = (_text(sc, 'acquisitiontype') or 'STD-12').upper() if sc is not None else 'STD-12'
    # without labels the channel order is the standard one only for 12-lead acquisitions
    labels = labels[:nleads] if labels else PHILIPS_LEADS[:nleads] \
        if kind in ('STD-12', '10-WIRE') else [f'channel {i + 1}' for i in range(nleads)]
    data = _b64(pw.text, name, 'parsedwaveforms')
    method = pw.get('compressmethod') or pw.get('compression') or 'Uncompressed'
    duration_ms = _num(pw.get('durationperchannel')) or 0
    if method.upper() == 'XLI':
        cols = xli_decode(data, name)[:len(labels)]
        if len(cols) < len(labels):
            raise RecordError(name, f'XLI stream holds {len(cols)} leads, header says '
                                    f'{len(labels)}')
        n = min(len(c) for c in cols)
        x = np.stack([c[:n] for c in cols], axis=1)
        if labels[:6] == PHILIPS_LEADS[:6]:
            i, ii = x[:, 0], x[:, 1]
            x[:, 2] = ii - i - x[:, 2]
            x[:, 3] = -x[:, 3] - (i + ii) // 2
            x[:, 4] = (i - x[:, 2]) // 2 - x[:, 4]
            x[:, 5] = (ii + x[:, 2]) // 2 - x[:, 5]
    elif method.lower() in ('uncompressed', 'none', ''):
        n = int(round(duration_ms * fs / 1000)) or len(data) // (2 * len(labels))
        raw = np.frombuffer(data[:len(data) // 2 * 2], '<i2')
        if len(raw) < n * len(labels):
            raise RecordError(name, f'parsedwaveforms holds {len(raw)} samples, expected '
                                    f'{n * len(labels)}')
        x = raw[:n * len(labels)].reshape(len(labels), n).T.astype(np.int64)
    else:
        raise RecordError(name, f'Philips waveform compression {method!r} is not supported')
    if not np.any(x):
        raise RecordError(name, f'{Path(path).name}: every lead is missing (all samples zero)')
    x = _drop_calibration(x, fs)
    meas = {}
    for el in root.iter():
        key = PHILIPS_MEASURES.get(el.tag if isinstance(el.tag, str) else '')
        if key and key not in meas and _num(el.text) is not None:
            meas[key] = _num(el.text)
    statements = []
    for st in root.iter('statement'):
        left, right = _text(st, 'leftstatement'), _text(st, 'rightstatement')
        if left or right:
            statements.append(', '.join(s for s in (left, right) if s))
    gp = root.find('.//generalpatientdata')
    age, sex, ids = float('nan'), 'Unknown', []
    if gp is not None:
        acq = root.find('.//dataacquisition')
        age = _age(_text(gp, 'age/years')) if _text(gp, 'age/years') else _age_between(
            _date(_text(gp, 'age/dateofbirth')), _date(acq.get('date') if acq is not None
                                                       else None))
        sex = _sex(_text(gp, 'sex'))
        ids = [_text(gp, p) for p in ('patientid', 'MRN', 'name/lastname', 'name/firstname')]
    return _record(path, safe_name(path, 'philips', ids), fs, x * res / 1000.0, labels,
                   ['mV'] * len(labels), 'philips', age, sex, measurements=meas,
                   statements=statements)


def _drop_calibration(x, fs):
    """An 11-s Philips export ends with a 1-s calibration segment (zeros, a
    1-mV square pulse, zeros) on every lead: keep what precedes its last
    second when every lead holds the same constant nonzero plateau there."""
    sec = int(round(fs))
    if len(x) < 2 * sec:
        return x
    tail = x[-sec:]
    # rows where every lead is nonzero and holds its value: the pulse's top
    held = (tail[1:] == tail[:-1]).all(axis=1) & (tail[1:] != 0).all(axis=1)
    if held.sum() >= int(0.05 * fs):
        return x[:-sec]
    return x


# --------------------------------------------------------------------------
# HL7 aECG.

AECG_MEASURES = {'MDC_ECG_HEART_RATE': 'hr', 'MDC_ECG_TIME_PD_PR': 'pr_ms',
                 'MDC_ECG_TIME_PD_QRS': 'qrs_ms', 'MDC_ECG_TIME_PD_QT': 'qt_ms',
                 'MDC_ECG_TIME_PD_QTc': 'qtc_ms', 'MDC_ECG_ANGLE_P_FRONT': 'p_axis',
                 'MDC_ECG_ANGLE_QRS_FRONT': 'qrs_axis', 'MDC_ECG_ANGLE_T_FRONT': 't_axis'}


def read_aecg(path):
    """HL7 aECG (AnnotatedECG): the RHYTHM series' sequenceSet; the time
    sequence's increment (s or ms) gives the rate, each MDC_ECG_LEAD_*
    sequence's SLIST_PQ gives origin + scale x digits in their unit. The
    first global annotations give the cart's measurements; MDC_ECG_RHY and
    interpretation statements' display names give its statements."""
    root = _strip_ns(_parse_xml(path))
    name = Path(path).stem
    series = [s for s in root.iter('series')]
    rhythm = [s for s in series if (s.find('code') is not None and
                                    s.find('code').get('code', '').upper() == 'RHYTHM')]
    if not (rhythm or series):
        raise RecordError(name, f'{Path(path).name}: aECG without a waveform series')
    ser = (rhythm or series)[0]
    fs, names, cols, units = None, [], [], []
    # the first sequenceSet; later ones repeat the leads (another time span)
    first = ser.find('.//sequenceSet')
    for seq in (first if first is not None else ser).iter('sequence'):
        code = (seq.find('code').get('code', '') if seq.find('code') is not None else '')
        val = seq.find('value')
        if val is None:
            continue
        if code.startswith('TIME_'):
            inc = val.find('increment')
            if inc is not None:
                step = _num(inc.get('value'))
                unit = (inc.get('unit') or 's').lower()
                if step:
                    fs = 1.0 / (step * {'s': 1, 'ms': 1e-3, 'us': 1e-6}.get(unit, 1))
            continue
        digits = val.find('digits')
        if digits is None:
            continue
        origin = val.find('origin')
        scale = val.find('scale')
        o = _num(origin.get('value')) if origin is not None else 0.0
        s = _num(scale.get('value')) if scale is not None else 1.0
        unit = (scale.get('unit') if scale is not None else None) or 'uV'
        cols.append(o + s * _numbers(digits.text, name, f'aECG {code}'))
        names.append(code)
        units.append(unit)
    if not cols:
        raise RecordError(name, f'{Path(path).name}: aECG rhythm series holds no lead sequence')
    if not fs:
        raise RecordError(name, f'{Path(path).name}: aECG without a time increment (rate)')
    meas, statements = {}, []
    for ann in root.iter('annotation'):
        code_el, val = ann.find('code'), ann.find('value')
        code = code_el.get('code', '') if code_el is not None else ''
        key = AECG_MEASURES.get(code) or AECG_MEASURES.get(code.upper())
        if key and val is not None and key not in meas and _num(val.get('value')) is not None:
            meas[key] = _num(val.get('value'))
        elif val is not None and (code.startswith('MDC_ECG_RHY') or 'INTERPRETATION' in code
                                  or 'STATEMENT' in code):
            text = val.get('displayName') or (val.text or '').strip() or val.get('code')
            if text:
                statements.append(text.replace('MDC_ECG_RHY_', '').replace('_', ' ').lower()
                                  if text.startswith('MDC_') else text)
    person = root.find('.//subjectDemographicPerson')
    sex, age, ids = 'Unknown', float('nan'), []
    if person is not None:
        g = person.find('administrativeGenderCode')
        sex = _sex(g.get('code') if g is not None else '')
        born = person.find('birthTime')
        when = root.find('effectiveTime/center')
        when = root.find('effectiveTime/low') if when is None else when
        age = _age_between(_date(born.get('value') if born is not None else None),
                           _date(when.get('value') if when is not None else None))
        ids = [_text(person, 'name')]
    for ts in root.iter('trialSubject'):
        i = ts.find('id')
        if i is not None:
            ids.append(i.get('extension'))
    return _record(path, safe_name(path, 'aecg', ids), fs, np.column_stack(_pad(cols)), names,
                   units, 'aecg', age, sex, measurements=meas,
                   statements=list(dict.fromkeys(statements)))


# --------------------------------------------------------------------------
# DICOM waveforms (pydicom).

DICOM_ECG = {'1.2.840.10008.5.1.4.1.1.9.1.1': '12-lead ECG',
             '1.2.840.10008.5.1.4.1.1.9.1.2': 'General ECG',
             '1.2.840.10008.5.1.4.1.1.9.1.3': 'Ambulatory ECG',
             '1.2.840.10008.5.1.4.1.1.9.2.1': 'Hemodynamic'}
DICOM_MEASURES = {'5.10.2.5-1': 'hr', '8867-4': 'hr', '5.13.5-7': 'pr_ms', '5.13.5-9': 'qrs_ms',
                  '5.13.5-11': 'qt_ms', '5.10.2.5-5': 'qtc_ms', '5.10.3-11': 'p_axis',
                  '5.10.3-13': 'qrs_axis', '5.10.3-15': 't_axis'}


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
    import pydicom
    from pydicom.errors import InvalidDicomError
    name = Path(path).stem
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
    rname = safe_name(path, 'dicom', ids)
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
    rec = _record(path, rname, fs, sig[:, keep], [names[j] for j in keep],
                  [units[j] for j in keep], 'dicom', _age(*_dicom_age(ds.get('PatientAge'))),
                  _sex(ds.get('PatientSex')), leads=[leads[j] for j in keep],
                  measurements=meas, statements=statements, ignored=ignored)
    if median:
        mfs, mnames, _, munits, msig, _ = _dicom_group(ds, median[0], rname)
        rec.median = {'fs': mfs, 'leads': mnames, 'units': munits, 'signal': msig}
    return rec


def _dicom_age(text):
    m = re.fullmatch(r'(\d{1,3})([DWMY])', str(text or '').strip())
    return (m.group(1), {'D': 'days', 'W': 'weeks', 'M': 'months', 'Y': 'years'}[m.group(2)]) \
        if m else (None, None)


def _dicom_group(ds, idx, rname):
    g = ds.WaveformSequence[idx]
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
        key = DICOM_MEASURES.get(code)
        if key is None and ('heart rate' in meaning or 'ventricular rate' in meaning):
            key = 'hr'
        if key and value is not None and key not in meas:
            meas[key] = value
        elif code == '5.10.2.1-3' and value and 'hr' not in meas:  # RR interval, ms
            meas.setdefault('_rr', value)
    rr = meas.pop('_rr', None)
    if 'hr' not in meas and rr:
        meas['hr'] = round(60000.0 / rr, 1)
    return meas, statements


# --------------------------------------------------------------------------
# SCP-ECG (EN 1064), written by hand: no maintained Python library reads it.

# The default Huffman table (EN 1064 annex): 0 -> '0', +/-k -> k+1 ones'
# prefix... as (prefix length, value) with '1'*n + '0'/'1' sign for 1..8,
# then '1111111110' + 8-bit and '1111111111' + 16-bit original values.

def _scp_huffman_default(data, count):
    """Decode `count` values of the default Huffman table from bytes (MSB first)."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8))
    n = len(bits)
    # run lengths of ones from each position: the prefix is up to 10 ones
    out = np.empty(count, np.int64)
    pos = 0
    b = bits.tolist()
    for k in range(count):
        ones = 0
        while ones < 10 and pos < n and b[pos] == 1:
            ones += 1
            pos += 1
        if pos >= n and ones < 10:
            return out[:k]
        if ones == 0:
            out[k] = 0
            pos += 1
        elif ones < 9:  # '1'*ones + '0' + sign: value ones
            if pos + 1 >= n:
                return out[:k]
            sign = b[pos + 1]
            out[k] = -ones if sign else ones
            pos += 2
        elif ones == 9:  # '111111111' + '0' -> 8-bit; the 10th bit is 0
            pos += 1
            v = int(''.join(map(str, b[pos:pos + 8])), 2)
            out[k] = v - 256 if v >= 128 else v
            pos += 8
        else:  # ten ones: 16-bit value
            v = int(''.join(map(str, b[pos:pos + 16])), 2)
            out[k] = v - 65536 if v >= 32768 else v
            pos += 16
    return out


def _crc_ccitt(data):
    """CRC-CCITT (0x1021, initial 0xFFFF) as SCP-ECG uses for records and sections."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _scp_sections(buf, name):
    """{section id: body bytes} from section 0's pointers; RecordError for a
    record whose length or layout is not EN 1064's."""
    length = struct.unpack('<I', buf[2:6])[0]
    if length != len(buf):
        raise RecordError(name, f'not a compliant SCP-ECG record (its length field says '
                                f'{length} bytes, the file has {len(buf)}): a device-specific '
                                f'variant (e.g. a Healforce handheld\'s packed 10-bit SCP), '
                                f'which no maintained reader reads')
    sid, slen = struct.unpack('<HI', buf[8:14])
    if sid != 0 or 6 + slen > len(buf):
        raise RecordError(name, 'SCP-ECG section 0 is missing or truncated')
    out = {}
    for k in range((slen - 16) // 10):
        o = 6 + 16 + 10 * k
        i, ln, idx = struct.unpack('<HII', buf[o:o + 10])
        if ln and idx:
            if idx - 1 + ln > len(buf) or ln < 16:
                raise RecordError(name, f'SCP-ECG section {i} lies outside the file')
            out[i] = buf[idx - 1 + 16: idx - 1 + ln]
    return out


def read_scp(path):
    """SCP-ECG: section 3 (leads), section 6 (rhythm: AVM nV, sample interval
    us, first or second differences) with the default Huffman table (section
    2 = 19999) or none; section 1 gives age and sex, section 7 the global
    measurements, section 8/11 the statements. Reference-beat subtraction
    and bimodal compression are refused with a line (not written yet)."""
    name = Path(path).stem
    buf = Path(path).read_bytes()
    if len(buf) < 32:
        raise RecordError(name, f'truncated SCP-ECG file ({len(buf)} bytes)')
    crc = struct.unpack('<H', buf[:2])[0]
    sec = _scp_sections(buf, name)
    if crc and crc != _crc_ccitt(buf[2:]):
        raise RecordError(name, 'SCP-ECG record CRC mismatch (corrupt file)')
    if 3 not in sec or 6 not in sec:
        raise RecordError(name, 'SCP-ECG without section 3 (leads) or 6 (rhythm data)')
    s3, s6 = sec[3], sec[6]
    nleads, flags = s3[0], s3[1]
    leads = [struct.unpack('<IIB', s3[2 + 9 * i:11 + 9 * i]) for i in range(nleads)]
    if flags & 1:
        raise RecordError(name, 'SCP-ECG with reference-beat subtraction is not read yet')
    avm, interval, diff, bimodal = struct.unpack('<HHBB', s6[:6])
    if bimodal:
        raise RecordError(name, 'SCP-ECG with bimodal compression is not read yet')
    huffman = struct.unpack('<H', sec[2][:2])[0] if 2 in sec and len(sec[2]) >= 2 else None
    if huffman not in (None, 19999):
        raise RecordError(name, 'SCP-ECG with custom Huffman tables is not read yet')
    sizes = struct.unpack(f'<{nleads}H', s6[6:6 + 2 * nleads])
    offset, cols = 6 + 2 * nleads, []
    for (start, end, _), size in zip(leads, sizes):
        count = end - start + 1
        chunk = s6[offset:offset + size]
        if not 0 < count <= 8 * len(chunk) + 2:  # every value takes a bit at least
            raise RecordError(name, f'SCP-ECG lead declares {count} samples in {len(chunk)} '
                                    f'bytes (corrupt section 3 or 6)')
        offset += size
        if huffman is None:
            d = np.frombuffer(chunk[:count * 2], '<i2').astype(np.int64)
        else:
            d = _scp_huffman_default(chunk, count)
        if len(d) < count:
            raise RecordError(name, f'SCP-ECG lead data ends early ({len(d)} of {count} '
                                    f'samples)')
        cols.append(_undiff(d, diff))
    names = [SCP_LEADS.get(code, f'SCP lead {code}') for _, _, code in leads]
    age, sex = _scp_patient(sec.get(1, b''))
    meas = _scp_measures(sec.get(7, b''))
    return _record(path, safe_name(path, 'scp', _scp_ids(sec.get(1, b''))), 1e6 / interval,
                   np.column_stack(_pad(cols)) * avm / 1e6, names, ['mV'] * nleads, 'scp',
                   age, sex, leads=[SCP_LEADS.get(c) for _, _, c in leads], measurements=meas,
                   statements=_scp_statements(sec))


def _undiff(d, order):
    x = d.astype(np.int64)
    if order == 1:
        return np.cumsum(x)
    if order == 2 and len(x) > 2:
        # x[n] = d[n] + 2 x[n-1] - x[n-2]: the steps x[n] - x[n-1] are a cumsum
        step = np.cumsum(np.r_[x[1] - x[0], x[2:]])
        return np.r_[x[0], x[0] + np.cumsum(step)]
    return x


def _scp_tags(s1):
    o = 0
    while o + 3 <= len(s1):
        tag, ln = s1[o], struct.unpack('<H', s1[o + 1:o + 3])[0]
        if tag == 255:
            return
        yield tag, s1[o + 3:o + 3 + ln]
        o += 3 + ln


def _scp_patient(s1):
    age, sex, born, acq = float('nan'), 'Unknown', None, None
    for tag, v in _scp_tags(s1):
        if tag == 4 and len(v) >= 3:
            age = _age(struct.unpack('<H', v[:2])[0], {1: 'years', 2: 'months', 3: 'weeks',
                                                       4: 'days', 5: 'hours'}.get(v[2], 'years'))
        elif tag == 8 and v:
            sex = {1: 'Male', 2: 'Female'}.get(v[0], 'Unknown')
        elif tag in (5, 25) and len(v) >= 4:
            y, m, d = struct.unpack('<HBB', v[:4])
            try:
                if tag == 5:
                    born = date(y, m, d)
                else:
                    acq = date(y, m, d)
            except ValueError:
                pass
    if np.isnan(age):
        age = _age_between(born, acq)
    return age, sex


def _scp_ids(s1):
    return [v.split(b'\x00')[0].decode('latin-1', 'replace') for t, v in _scp_tags(s1)
            if t in (0, 1, 2, 3)]


def _scp_measures(s7):
    """Section 7's global measurements (ms; axes in degrees; 29999 = not
    computed): after the reference-beat count and pace data, P on/off,
    QRS on/off, T off per beat type, then axes. Only type 0 is used."""
    if len(s7) < 6:
        return {}
    nref = s7[0]
    try:
        rr = struct.unpack('<H', s7[2:4])[0]
        pon, poff, qon, qoff, toff, pax, qax, tax = struct.unpack('<8h', s7[6:22]) \
            if nref else (None,) * 8
    except struct.error:
        return {}
    ok = [v is not None and v != 29999 for v in (pon, poff, qon, qoff, toff, pax, qax, tax)]
    meas = {}
    if rr and rr != 29999:
        meas['hr'] = round(60000.0 / rr, 1)
    if ok[0] and ok[2]:
        meas['pr_ms'] = float(qon - pon)
    if ok[2] and ok[3]:
        meas['qrs_ms'] = float(qoff - qon)
    if ok[2] and ok[4]:
        meas['qt_ms'] = float(toff - qon)
    for key, v, good in (('p_axis', pax, ok[5]), ('qrs_axis', qax, ok[6]),
                         ('t_axis', tax, ok[7])):
        if good and -360 <= v <= 360:
            meas[key] = float(v)
    return meas


def _scp_statements(sec):
    out = []
    s8 = sec.get(8, b'')
    if len(s8) > 8:
        o = 9
        while o + 3 <= len(s8):
            ln = struct.unpack('<H', s8[o + 1:o + 3])[0]
            text = s8[o + 3:o + 3 + ln].split(b'\x00')[0].decode('latin-1', 'replace').strip()
            if text:
                out.append(text)
            o += 3 + ln
    return out


# --------------------------------------------------------------------------
# ISHNE Holter.

def read_ishne(path):
    """ISHNE 1.0 Holter: a fixed 512-byte header (lead codes, amplitude
    resolution in nV, rate), then int16 interleaved samples, memory-mapped
    (a 24-h Holter costs nothing to open). The beats of its .ann, where one
    lies beside it, come from read_ishne_beats()."""
    name = Path(path).stem
    buf = Path(path).read_bytes()[:522] if Path(path).stat().st_size >= 522 else b''
    if len(buf) < 522 or not buf.startswith(b'ISHNE1.0'):
        raise RecordError(name, f'{Path(path).name}: truncated ISHNE header')
    h = buf[10:]
    var_len, n_per_lead, _, ecg_off = struct.unpack('<iiii', h[:16])
    nleads = struct.unpack('<h', h[146:148])[0]
    spec = struct.unpack('<12h', h[148:172])
    res = struct.unpack('<12h', h[196:220])
    fs = struct.unpack('<h', h[262:264])[0]
    sex = {1: 'Male', 2: 'Female'}.get(struct.unpack('<h', h[118:120])[0], 'Unknown')
    born, rec_date = struct.unpack('<3h', h[122:128]), struct.unpack('<3h', h[128:134])
    if not 0 < nleads <= 12 or fs <= 0:
        raise RecordError(name, f'ISHNE header gives {nleads} leads at {fs} Hz')
    size = Path(path).stat().st_size
    n = (size - ecg_off) // (2 * nleads)
    if n_per_lead > 0:
        n = min(n, n_per_lead)
    if n <= 0:
        raise RecordError(name, 'ISHNE file holds no samples')
    mm = np.memmap(path, dtype='<i2', mode='r', offset=ecg_off, shape=(n, nleads))
    scale = np.array([r if r > 0 else 1 for r in res[:nleads]], np.float64) / 1e6  # nV -> mV
    names = [ISHNE_LEADS.get(c, f'ISHNE lead code {c}') for c in spec[:nleads]]
    try:
        age = _age_between(date(born[2], born[1], born[0]), date(rec_date[2], rec_date[1],
                                                                 rec_date[0]))
    except ValueError:
        age = float('nan')
    ids = [h[18:58].split(b'\x00')[0].decode('latin-1'), h[58:98].split(b'\x00')[0].decode(
        'latin-1'), h[98:118].split(b'\x00')[0].decode('latin-1')]
    rec = Record(safe_name(path, 'ishne', [i for i in ids if i.lower() != 'none']), path, fs,
                 n, names, ['mV'] * nleads, lambda a, b: mm[a:b].astype(np.float64) * scale,
                 age=age, sex=sex, dx=None, files=[Path(path)], fmts=['ishne'] * nleads)
    rec.leads = [ISHNE_LEADS.get(c) for c in spec[:nleads]]
    rec.format, rec.ignored = 'ishne', []
    rec.device_measurements, rec.device_statements = {}, []
    rec._gains = np.full(nleads, 1.0) / scale
    rec._baselines = np.zeros(nleads)
    rec._limit = 32767
    ann = Path(path).with_suffix('.ann')
    if ann.is_file():
        rec.files.append(ann)
    return rec


def read_ishne_beats(path):
    """An ISHNE .ann (beside RECORD.ecg, or the .ann itself) -> (sample
    indices int64, labels) of its beats: each entry is a label byte, a byte
    of internal use and a uint16 RR interval (samples) to the previous beat;
    the first beat's time is the header's first-annotation offset."""
    path = Path(path).with_suffix('.ann')
    name = path.stem
    if not path.is_file():
        raise RecordError(name, f'no ISHNE annotation file {path}')
    buf = path.read_bytes()
    if not buf.startswith(b'ANN  1.0') or len(buf) < 522:
        raise RecordError(name, f'{path.name} is no ISHNE 1.0 annotation file')
    ecg_off = struct.unpack('<i', buf[22:26])[0]
    first = struct.unpack('<I', buf[ecg_off:ecg_off + 4])[0] if ecg_off + 4 <= len(buf) else 0
    body = buf[ecg_off + 4:]
    n = len(body) // 4
    ent = np.frombuffer(body[:n * 4], dtype=[('label', 'S1'), ('toc', 'u1'), ('rr', '<u2')])
    samples = first + np.cumsum(ent['rr'].astype(np.int64))
    labels = np.array([lab.decode('latin-1') for lab in ent['label']])
    keep = labels != '\x00'
    return samples[keep], labels[keep]


# --------------------------------------------------------------------------
# EDF / EDF+ / BDF (pyedflib).

def read_edf(path):
    """EDF, EDF+ or BDF: the channels whose label names a lead ('ECG I',
    'EKG V1', 'II', ...) at their common rate; an unrecognised label at that
    rate stays as a channel without a lead (a generic 'ECG': --lead-map names
    it); channels at other rates (EEG, SpO2, ...) are ignored and named in
    rec.ignored. Samples are read on demand, physical units."""
    import pyedflib
    name = Path(path).stem
    try:
        f = pyedflib.EdfReader(str(path))
    except OSError as e:
        raise RecordError(name, f'{Path(path).name}: unreadable EDF ({e})') from None
    try:
        labels = [s.strip() for s in f.getSignalLabels()]
        rates = [float(r) for r in f.getSampleFrequencies()]
        units = [f.getPhysicalDimension(i).strip() or 'uV' for i in range(len(labels))]
        nsamp = list(f.getNSamples())
        sex = _sex(getattr(f, 'getSex', lambda: '')() or '')
        ids = [f.getPatientName(), f.getPatientCode()]
    except Exception as e:  # noqa: BLE001 (pyedflib raises many types for broken headers)
        f.close()
        raise RecordError(name, f'{Path(path).name}: unreadable EDF header ({e})') from None
    ecg = [i for i, lab in enumerate(labels) if lead_name(lab) or re.match(r'(?i)(ecg|ekg)',
                                                                             lab)]
    if not labels:
        f.close()
        raise RecordError(name, 'EDF without signals')
    pool = ecg or list(range(len(labels)))
    fs = max(set(rates[i] for i in pool), key=lambda r: sum(rates[i] == r for i in pool))
    chans = [i for i in range(len(labels)) if rates[i] == fs and
             not re.search(r'(?i)annotation', labels[i])]
    ignored = [labels[i] for i in range(len(labels)) if i not in chans]
    n = min(nsamp[i] for i in chans)
    f.close()

    def read(a, b):
        with pyedflib.EdfReader(str(path)) as g:
            return np.column_stack([g.readSignal(i, a, b - a) for i in chans])
    rec = Record(safe_name(path, 'edf', ids), path, fs, n, [labels[i] for i in chans],
                 [units[i] for i in chans], read, sex=sex, dx=None, files=[Path(path)],
                 fmts=['edf'] * len(chans))
    rec.leads = [lead_name(labels[i]) for i in chans]
    rec.format, rec.ignored = 'edf', ignored
    rec.device_measurements, rec.device_statements = {}, []
    return rec


# --------------------------------------------------------------------------
# CSV.

TIME_COLUMNS = ('time', 't', 'time_s', 'time (s)', 'seconds', 'sec', 's', 'time_ms',
                'time (ms)', 'ms', 'timestamp')


def _csv_column(label):
    """'II', 'V5 (uV)', 'I [mV]', 'ECG_II_uV' -> (lead or None, unit)."""
    text = label.strip().strip('"\'')
    unit = 'mV'
    m = re.search(r'[\s_\-\[(]*(uv|µv|μv|mv)[\])]?$', text, flags=re.I)
    if m and text[:m.start()].strip():
        unit = 'uV' if m.group(1).lower() != 'mv' else 'mV'
        text = text[:m.start()]
    return lead_name(text), unit


def read_csv(path, fs=None):
    """CSV (or ';'/tab separated) with a header row: one column per lead
    named by lead ('I', 'II', 'V1', aliases; a '(uV)' or '_uV' suffix gives
    the unit, else mV), and either `fs` or a time column (s, or ms when named
    so) giving the rate. Columns that name no lead are ignored and named
    (rec.ignored); a lead map (records.read_record) can name them."""
    name = Path(path).stem
    text = Path(path).read_text(encoding='utf-8-sig', errors='replace')
    lines = text.splitlines()
    if len(lines) < 2:
        raise RecordError(name, f'{Path(path).name}: CSV without data rows')
    sep = max([',', ';', '\t'], key=lambda s: lines[0].count(s))
    header = [h.strip().strip('"\'') for h in lines[0].split(sep)]
    try:
        data = np.loadtxt(lines[1:], delimiter=sep, ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise RecordError(name, f'{Path(path).name}: non-numeric CSV data ({e})') from None
    if data.shape[1] != len(header):
        raise RecordError(name, f'CSV rows hold {data.shape[1]} values, the header names '
                                f'{len(header)} columns')
    low = [h.lower() for h in header]
    tcol = next((j for j, h in enumerate(low) if h in TIME_COLUMNS), None)
    if fs is None and tcol is not None:
        step = np.median(np.diff(data[:, tcol]))
        ms = 'ms' in low[tcol]
        fs = 1.0 / (step / 1000.0 if ms else step) if step > 0 else None
    if not fs:
        raise RecordError(name, f'{Path(path).name}: CSV without a time column; give the '
                                f'sampling rate with --fs HZ')
    cols = [j for j in range(len(header)) if j != tcol]
    parsed = [_csv_column(header[j]) for j in cols]
    return _record(path, name, fs, data[:, cols], [header[j] for j in cols],
                   [u for _, u in parsed], 'csv', leads=[lead for lead, _ in parsed])
