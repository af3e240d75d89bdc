"""Philips PageWriter / SierraECG XML (1.03-1.04.02), XLI-compressed or not."""
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age, _age_between, _b64, _date, _num, _parse_xml
from records.formats.common import _record, _sex, _strip_ns, _text, record_name

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
    from sierraecg.lzw import LzwDecoder  # here, not on top: 0.03 s, for XLI only
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
    return _record(path, record_name(path, 'philips', ids), fs, x * res / 1000.0, labels,
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
