"""The ECG files hospitals and devices export, read into records.Record.

    from records import read_record
    rec = read_record('exports/ecg.dcm')     # or .xml, .scp, .ecg, .edf, .csv
    rec.leads, rec.fs, rec.device_measurements, rec.device_statements

records.read_record() recognises each format by its content (magic bytes,
XML root element, DICOM preamble, EDF header, ISHNE magic, SCP section
layout, MFER definitions, a CSV header), not by its extension, and calls the
one reader here:

    format      reader            library
    dicom       read_dicom        pydicom (12-lead, General ECG, Ambulatory,
                                  Hemodynamic Waveform Storage)
    muse        read_muse         defusedxml (GE MUSE RestingECG XML)
    cardiosoft  read_cardiosoft   defusedxml (GE CardioSoft CardiologyXML)
    philips     read_philips      defusedxml + a bounded LZW as sierraecg's
                                  (PhilipsECG / SierraECG XML 1.03-1.04.02, XLI)
    aecg        read_aecg         defusedxml (HL7 aECG, FDA)
    scp         read_scp          by hand (SCP-ECG, EN 1064): no maintained
                                  Python library reads it (see docs/formats.md)
    ishne       read_ishne        by hand (ISHNE 1.0 Holter, a fixed header
                                  and interleaved int16; memory-mapped)
    edf         read_edf          pyedflib (EDF, EDF+, BDF)
    mfer        read_mfer         by hand (MFER, ISO 22077-1: Nihon Kohden and
                                  Fukuda Denshi carts, monitors, Holters)
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
Each reader checks what a file declares (rate, leads, values, file and XML
sizes) against the one budget of records/limits.py before decoding, and its
decoders (base64, LZW, Huffman) check their output as they go
(docs/hostile.md, "The hospital readers").
"""
import re
import struct
from pathlib import Path

from records.errors import RecordError
from records.formats.aecg import read_aecg
from records.formats.cardiosoft import read_cardiosoft
from records.formats.common import DEVICE_KEYS, SCP_LEADS, lead_name, record_name
from records.formats.csv import read_csv
from records.formats.dicom import read_dicom
from records.formats.edf import read_edf
from records.formats.ishne import read_ishne, read_ishne_beats
from records.formats.mfer import (ATT, BLE, BLK, CHN, DTP, IVL, KNOWN_TAGS, PNT, SEN, SEQ,
                                  VER, WAV, WFM, read_mfer)
from records.formats.muse import read_muse
from records.formats.philips import read_philips, xli_decode
from records.formats.scp import read_scp

__all__ = ['DEVICE_KEYS', 'SCP_LEADS', 'lead_name', 'record_name', 'read', 'sniff', 'read_aecg',
           'read_cardiosoft', 'read_csv', 'read_dicom', 'read_edf', 'read_ishne',
           'read_ishne_beats', 'read_mfer', 'read_muse', 'read_philips', 'read_scp',
           'xli_decode']

# Extensions of the formats here (lower case); the content decides, these only
# let a record finder pick the files out of a folder.
SUFFIXES = {'.dcm': 'dicom', '.dicom': 'dicom', '.xml': 'xml', '.scp': 'scp', '.ecg': 'ishne',
            '.edf': 'edf', '.bdf': 'edf', '.csv': 'csv', '.mwf': 'mfer'}
XML_ROOTS = {'RestingECG': 'muse', 'CardiologyXML': 'cardiosoft', 'restingecgdata': 'philips',
             'AnnotatedECG': 'aecg'}
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


def _looks_mfer(head):
    """MFER: the file opens with a chain of MFER definitions (tag, length,
    value), each of a known tag and, for the fixed-size ones, a plausible
    size and value (byte order 0/1, a 3-byte version, a data type 0-9, 1-4
    byte counts, unit + exponent + mantissa), among them one that only a
    waveform file holds (byte order, block, channels, sequences, type,
    interval, resolution, a channel's attributes, the data), and at least
    three of them or the waveform data."""
    pos, count, core = 0, 0, False
    while pos < len(head) and count < 64:
        tag = head[pos]
        if tag == 0:
            pos += 1
            continue
        if tag not in KNOWN_TAGS or tag == 0x80:
            break
        pos += 1
        if tag == ATT:   # the channel number, 7 bits a byte
            while pos < len(head) and head[pos] & 0x80:
                pos += 1
            pos += 1
        if pos >= len(head):
            break
        n = head[pos]
        pos += 1
        if n == 0x80 and tag == ATT:
            return core or count >= 2
        if n > 0x80:
            k = n & 0x7F
            if k > 4:
                return False
            n, pos = int.from_bytes(head[pos:pos + k], 'big'), pos + k
        elif n == 0x80:
            return False
        value = head[pos:pos + n]
        if (tag == BLE and (n != 1 or value[:1] not in (b'\x00', b'\x01'))) or \
                (tag == VER and n != 3) or (tag == DTP and (n > 1 or value[:1] > b'\x09')) or \
                (tag in (BLK, CHN, SEQ, PNT) and n > 4) or \
                (tag in (IVL, SEN) and n and not 3 <= n <= 6):
            return False
        count += 1
        core = core or tag in (BLE, BLK, CHN, SEQ, DTP, IVL, SEN, ATT, WAV, WFM)
        if tag == WAV:
            return core and count >= 2
        pos += n
    return core and count >= 3


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
    if _looks_mfer(head):
        return 'mfer'
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
               'ishne': read_ishne, 'edf': read_edf, 'mfer': read_mfer}
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
