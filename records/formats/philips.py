"""Philips PageWriter / SierraECG XML (1.03-1.04.02), XLI-compressed or not."""
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age, _age_between, _b64, _budget, _date, _num, _parse_xml
from records.formats.common import _record, _sex, _strip_ns, _text, record_name
from records.limits import FORMAT_MAX_VALUES
from records.measurements import vendor_values

# --------------------------------------------------------------------------
# Philips PhilipsECG / SierraECG XML.

PHILIPS_LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6']


def _lzw(data, limit, name, lead, bits=10):
    """The LZW stream of one XLI lead -> bytes, as sierraecg's LzwDecoder
    decodes it (MSB-first codes of `bits` bits, no reset, a code above
    2^bits - 2 ends the stream), a string per code rather than a byte per
    call, and refused once the output passes `limit` bytes: a 100-kB
    stream can ask for gigabytes (each code may stand for ~1000 bytes)."""
    ncodes = len(data) * 8 // bits
    b = np.unpackbits(np.frombuffer(data, np.uint8))[:ncodes * bits].reshape(ncodes, bits)
    codes = (b.astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1))).tolist()
    top = (1 << bits) - 2
    strings = {c: bytes([c]) for c in range(256)}
    nxt, prev, out = 256, b'', bytearray()
    for code in codes:
        if code > top:
            break
        cur = strings.get(code)
        if cur is None:
            cur = strings[code] = prev + prev[:1]
        if not cur:  # an unknown first code: sierraecg's stream ends there
            break
        if prev and nxt <= top:
            strings[nxt] = prev + cur[:1]
            nxt += 1
        prev = cur
        out += cur
        if len(out) > limit:
            raise RecordError(name, f'XLI lead {lead} decodes to over {limit // 2} samples '
                                    f'(its header or the budget allows no more)')
    return bytes(out)


def xli_decode(data, name, limit=FORMAT_MAX_VALUES):
    """Philips XLI: per lead an 8-byte header (int32 size, int16 code,
    int16 first), an LZW stream (10-bit codes, _lzw), then the bytes split
    in a high and a low half and second-order delta decoding. Done here in
    int64 with cumulative sums, so a value outside int16 (which makes
    sierraecg's element-wise int16 arithmetic raise) is kept. At most
    `limit` samples a lead and FORMAT_MAX_VALUES in all are decoded."""
    leads, offset, total = [], 0, 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], 'little', signed=True)
        first = int.from_bytes(data[offset + 6:offset + 8], 'little', signed=True)
        offset += 8
        if size <= 0 or offset + size > len(data):
            raise RecordError(name, f'XLI stream ends early (lead {len(leads) + 1} declares '
                                    f'{size} bytes, {len(data) - offset} left)')
        buf = bytearray(_lzw(data[offset:offset + size],
                             2 * min(limit, FORMAT_MAX_VALUES - total), name, len(leads) + 1))
        offset += size
        if len(buf) % 2:
            buf.append(0)
        total += len(buf) // 2
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
    root = _strip_ns(_parse_xml(path, 'philips'))
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
    nleads = _num(pw.get('numberofleads')) or _num(_text(sc, 'numberchannelsvalid')) or 12
    _budget(name, path, leads=nleads, what=f'Philips XML {version}')
    nleads = int(nleads)
    kind = (_text(sc, 'acquisitiontype') or 'STD-12').upper() if sc is not None else 'STD-12'
    # without labels the channel order is the standard one only for 12-lead acquisitions
    labels = labels[:nleads] if labels else PHILIPS_LEADS[:nleads] \
        if kind in ('STD-12', '10-WIRE') else [f'channel {i + 1}' for i in range(nleads)]
    duration_ms = _num(pw.get('durationperchannel')) or 0
    # the declared size, checked before the base64 and the LZW are decoded;
    # a lead may decode to its declared length plus a second (as real files do)
    declared = int(duration_ms * fs / 1000) if 0 < duration_ms < 1e12 else 0
    _budget(name, path, fs=fs, leads=len(labels), values=len(labels) * declared,
            what=f'Philips XML {version}')
    data = _b64(pw.text, name, 'parsedwaveforms', 2 * FORMAT_MAX_VALUES)
    method = pw.get('compressmethod') or pw.get('compression') or 'Uncompressed'
    if method.upper() == 'XLI':
        cols = xli_decode(data, name, declared + int(fs) if declared else
                          FORMAT_MAX_VALUES // len(labels))[:len(labels)]
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
        if n == 0:
            raise RecordError(name, f'{Path(path).name}: Philips XML {version}: '
                                    f'parsedwaveforms holds no samples')
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
    meas, statements = _philips_reading(root)
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


# The cart's global figures, in the order they are trusted: the printed
# interpretation's (1.04: globalmeasurements, 1.03: interpretationmeasurements),
# then the analysis' cross-lead block (1.04: internalmeasurements/
# crossleadmeasurements, 1.03: measurements/globalmeasurements). The same tags
# in groupmeasurements and leadmeasurements are one beat group's or one lead's
# (a PageWriter's lead I QRS of 86 ms where the cart prints 98): never read.
PHILIPS_GLOBAL = ('globalmeasurements', 'interpretationmeasurements')
PHILIPS_CROSSLEAD = ('internalmeasurements/crossleadmeasurements',
                     'measurements/globalmeasurements')


def _philips_reading(root):
    """The cart's reading -> ({device key: number}, statements). Each key
    from the first global block that holds it (PHILIPS_GLOBAL of the first
    interpretation, then PHILIPS_CROSSLEAD); the statements (left, right)
    of that interpretation. An analysis that failed (the first block's
    rate and intervals all 0; its axes of -1 were never measured either)
    gives no figures and one statement, 'the cart did not measure: <its
    statements ("All 12 leads are missing"), or its QA message>'."""
    interps = root.findall('interpretations/interpretation')
    interp = next((i for i in interps if any(i.find(t) is not None for t in PHILIPS_GLOBAL)),
                  interps[0] if interps else None)
    blocks = [b for b in ([interp.find(t) for t in PHILIPS_GLOBAL] if interp is not None
                          else []) + [root.find(t) for t in PHILIPS_CROSSLEAD] if b is not None]
    values = [vendor_values('philips', lambda tag, b=b: _num(_text(b, tag))) for b in blocks]
    meas = {}
    for v in values:
        meas = {**v, **meas}
    statements = []
    for st in interp.findall('statement') if interp is not None else []:
        left, right = _text(st, 'leftstatement'), _text(st, 'rightstatement')
        if left or right:
            statements.append(', '.join(s for s in (left, right) if s))
    first = next((v for v in values if v), {})
    timed = [first[k] for k in ('hr', 'pr_ms', 'qrs_ms', 'qt_ms') if k in first]
    if timed and not any(v > 0 for v in timed):
        qa = [(_text(root, f'{t}/qaactioncode') or '') for t in PHILIPS_CROSSLEAD] + \
            [(q.text or '').strip() for t in PHILIPS_CROSSLEAD
             for q in root.findall(f'{t}/qamessagecodes/qamessagecode')]
        qa = [q for q in qa if q and q.lower() not in ('none', 'ecg ok', 'acceptable trace')]
        reason = '; '.join(statements or qa) or 'no reason given'
        return {}, [f'the cart did not measure: {reason}']
    return meas, statements


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
