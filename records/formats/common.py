"""Helpers shared by the hospital-format readers: names, numbers, XML."""
import base64
import hashlib
import re
from datetime import date
from pathlib import Path
from xml.etree.ElementTree import ParseError

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from records.errors import RecordError
from records.leads import channel_lead
from records.limits import FORMAT_MAX_VALUES, FS_RANGE, MAX_SIGNALS, MAX_XML_BYTES
from records.limits import MAX_XML_ELEMENTS
from records.measurements import DEVICE_KEYS  # the cart's figures a reader keeps
from records.measurements import ZERO_IS_ABSENT
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
    'Lead I (Einthoven)', 'ECG II', 'EKG V1', 'MDC_ECG_LEAD_AVR', 'V5-Ref'.
    An inverted lead ('MDC_ECG_LEAD_-aVR', 'aVR (neg)') is None here, never
    the lead: the Record built over a channel so named reads it as the lead
    negated (records.leads.channel_lead), and a reader that keeps another
    name for it leaves the channel unused rather than upside down."""
    lead, sign = channel_lead(label)
    return lead if sign > 0 else None


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


def _budget(name, path, fs=None, leads=None, values=None, what='the file'):
    """Refuse what a file declares beyond the ceilings of records/limits.py,
    before it is decoded: the rate outside FS_RANGE, more than MAX_SIGNALS
    leads, more than FORMAT_MAX_VALUES values (leads x the longest lead)."""
    file = Path(path).name
    if fs is not None and not (np.isfinite(fs) and FS_RANGE[0] <= fs <= FS_RANGE[1]):
        raise RecordError(name, f'{file}: sampling rate {fs:g} Hz is outside '
                                f'{FS_RANGE[0]:g}-{FS_RANGE[1]:g} Hz')
    if leads is not None and not 0 < leads <= MAX_SIGNALS:
        raise RecordError(name, f'{file}: {what} holds {leads} leads (1 to {MAX_SIGNALS} '
                                f'are read)')
    if values is not None and values > FORMAT_MAX_VALUES:
        raise RecordError(name, f'{file}: {what} holds {values} values, over the '
                                f'{FORMAT_MAX_VALUES} read from one file (12 leads x 30 min '
                                f'at 500 Hz)')


def _record(path, name, fs, signal, names, units, fmt, age=float('nan'), sex='Unknown',
            leads=None, measurements=None, statements=None, ignored=(), median=None,
            full_disclosure=None):
    """A Record over an in-memory signal (n, channels) in `units`."""
    _budget(name, path, fs=fs)
    signal = np.asarray(signal, dtype=np.float64)
    if signal.ndim != 2 or signal.shape[0] == 0 or signal.shape[1] == 0:
        raise RecordError(name, f'{Path(path).name}: no samples in the file ({fmt})')
    return Record(
        name=name, path=path, fs=fs, sig_len=len(signal), sig_names=names, units=units,
        reader=lambda a, b: signal[a:b], format=fmt, age=age, sex=sex, files=[Path(path)],
        fmts=[fmt] * len(names), leads=[lead_name(n) for n in names] if leads is None else leads,
        device_measurements=_measured(measurements),
        device_statements=[without_staff_names(s) for s in (statements or []) if s],
        ignored=ignored,
        median=median, full_disclosure=full_disclosure)


def _measured(measurements):
    """The cart's figures a Record keeps: its keys (DEVICE_KEYS), finite,
    and an interval or a rate of 0 (or less) dropped: carts write 0 for "not
    measured" (ZERO_IS_ABSENT); an axis of 0 degrees is kept."""
    out = {}
    for k, v in (measurements or {}).items():
        if k in DEVICE_KEYS and v is not None and np.isfinite(v) and \
                not (k in ZERO_IS_ABSENT and v <= 0):
            out[k] = float(v)
    return out


# A statement that names who confirmed, read or recorded the ECG ("Confirmed
# by SMITH, JOHN (12) on 3/4/2015", "Technician: JD"): the name, and what
# follows it, is dropped; the statement stays ("Confirmed by [name removed]").
_STAFF_BY = re.compile(
    r'\b((?:confirmed|reviewed|edited|over-?read|interpreted|read|approved|signed|verified|'
    r'validated|acquired|referred|requested|ordered|reported|recorded|performed|tested)\s+by)'
    r'\b\s*:?\s*\S.*$', re.IGNORECASE | re.DOTALL)
_STAFF_FIELD = re.compile(
    r'\b((?:referring |ordering |attending |reading )?(?:technician|tech|operator|physician|'
    r'cardiologist|doctor|nurse|md|reviewer|editor|confirmer))\s*:\s*\S.*$',
    re.IGNORECASE | re.DOTALL)
NAME_REMOVED = '[name removed]'


def without_staff_names(text):
    """A cart's statement without the name of the physician or technician
    it names: 'Confirmed by Smith, John M.D.' -> 'Confirmed by [name
    removed]', 'Technician: JD' -> 'Technician: [name removed]'. A name is
    personal data, and statements reach predict.py's CSV, logs and pages;
    every reader's statements pass here (_record)."""
    text = _STAFF_BY.sub(lambda m: f'{m.group(1)} {NAME_REMOVED}', str(text))
    return _STAFF_FIELD.sub(lambda m: f'{m.group(1)}: {NAME_REMOVED}', text)


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

def _parse_xml(path, fmt):
    """defusedxml's ElementTree of an untrusted file: entities, external
    entities and DTD tricks raise instead of expanding. Its size and element
    count are checked first (records/limits.py: MAX_XML_BYTES[fmt],
    MAX_XML_ELEMENTS)."""
    name = Path(path).stem
    size, most = Path(path).stat().st_size, MAX_XML_BYTES[fmt]
    if size > most:
        raise RecordError(name, f'{Path(path).name} is {size / 2 ** 20:.1f} MB, over the '
                                f'{most >> 20} MB a {fmt} XML can be')
    data = Path(path).read_bytes()
    if data.count(b'<') > MAX_XML_ELEMENTS:
        raise RecordError(name, f"{Path(path).name}: XML with {data.count(b'<')} tags, over "
                                f'the {MAX_XML_ELEMENTS} an ECG XML can hold')
    try:
        return defused_fromstring(data, forbid_dtd=False, forbid_entities=True,
                                  forbid_external=True)
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
    found = el.find(path) if el is not None else None
    return found.text.strip() if found is not None and found.text else default


def _b64(text, name, what, limit=None):
    """Base64 text -> bytes; with `limit`, text decoding to more bytes than
    that is refused from its length, before it is decoded."""
    text = ''.join((text or '').split())
    if limit is not None and len(text) // 4 * 3 > limit:
        raise RecordError(name, f'{what} holds {len(text) // 4 * 3} bytes of base64, over '
                                f'the {limit} read from one file')
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise RecordError(name, f'bad base64 in {what}') from None
