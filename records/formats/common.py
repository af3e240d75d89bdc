"""Helpers shared by the hospital-format readers: names, numbers, XML."""
import base64
import hashlib
import re
from datetime import date
from pathlib import Path
from xml.etree.ElementTree import ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import parse as defused_parse

from records.errors import RecordError
from records.leads import canonical_lead
from records.limits import MAX_XML_BYTES
from records.measurements import DEVICE_KEYS  # the cart's figures a reader keeps
from records.record import Record

# SCP-ECG / DICOM / MDC lead codes (SCP-ECG table 6, shared by MDC's
# MDC_ECG_LEAD_* numbering and DICOM's SCPECG 5.6.3-9-N and MDC 2:N codes).
SCP_LEADS = {1: 'I', 2: 'II', 3: 'V1', 4: 'V2', 5: 'V3', 6: 'V4', 7: 'V5', 8: 'V6',
             61: 'III', 62: 'aVR', 63: 'aVL', 64: 'aVF'}

# Words exports put in empty name/ID fields: not identifiers of anyone.
PLACEHOLDERS = {'anonymous', 'anon', 'unknown', 'none', 'patient', 'xxxxxx', 'test', 'demo',
                'name', 'doctor', 'person name'}


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


def record_name(path, fmt, identifiers=()):
    """A record's name that identifies no patient: the file's stem, unless
    the stem is an identifier (a DICOM-style UID of digits and dots, or it
    contains one of the file's own identifiers: patient ID, name, SOP
    Instance UID) -> '<fmt>-<sha256 of the content>'."""
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
            leads=None, measurements=None, statements=None, ignored=(), median=None,
            full_disclosure=None):
    """A Record over an in-memory signal (n, channels) in `units`."""
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[0] == 0 or signal.shape[1] == 0:
        raise RecordError(name, f'{Path(path).name}: no samples in the file ({fmt})')
    return Record(
        name=name, path=path, fs=fs, sig_len=len(signal), sig_names=names, units=units,
        reader=lambda a, b: signal[a:b], format=fmt, age=age, sex=sex, files=[Path(path)],
        fmts=[fmt] * len(names), leads=[lead_name(n) for n in names] if leads is None else leads,
        device_measurements={k: float(v) for k, v in (measurements or {}).items()
                             if k in DEVICE_KEYS and v is not None and np.isfinite(v)},
        device_statements=[s for s in (statements or []) if s], ignored=ignored,
        median=median, full_disclosure=full_disclosure)


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
    name = Path(path).stem
    size = Path(path).stat().st_size
    if size > MAX_XML_BYTES:
        raise RecordError(name, f'{Path(path).name} is {size >> 20} MB, over the '
                                f'{MAX_XML_BYTES >> 20} MB an ECG XML can be')
    try:
        return defused_parse(str(path), forbid_dtd=False, forbid_entities=True,
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
