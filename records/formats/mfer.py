"""MFER (ISO 22077-1, Medical waveform Format Encoding Rules): the files of
Nihon Kohden and Fukuda Denshi carts, monitors and Holters (`.mwf`).

Built from the standard's tag list (MFER Part 1 = ISO 22077-1, its table of
tags; the lead codes of Part 2 = ISO 22077-2, which are SCP-ECG's), as read
by three open readers that agree on every tag and code used here:
ecgdatakit's `parsing/parsers/mfer.py` (UMMISCO/ECGDataKit), BioSig's
`mwfopen.m`, and an MFER definition table of a C# ECG viewer (`MFERdef`).

A file is a sequence of definitions, each a tag byte, a length (one byte
below 0x80; 0x81-0x84: that many big-endian length bytes follow; 0x80: an
indefinite length closed by 00 00) and a value. Definitions hold until
redefined; MWF_ATT (0x3F, then the channel number, 0-based, in 7-bit
groups) holds one channel's own definitions, overriding the file's. Each
MWF_WAV is a frame: SEQ sequences x CHN channels x each channel's BLK
samples, in MWF_DTP's type and MWF_BLE's byte order; physical value =
(stored + MWF_OFF) x MWF_SEN; stored == MWF_NUL is no value (NaN).
"""
from datetime import date
from fractions import Fraction
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age_between, _budget, _record, record_name
from records.limits import MAX_MFER_BYTES, MFER_MAX_DEFINITIONS, MFER_MAX_LAYOUTS

# Tags (MFER Part 1's table).
BLE, VER, TXC, BLK, CHN, SEQ, PNT, WFM, LDN, DTP, IVL, SEN, OFF, CMP = range(0x01, 0x0F)
NUL, WAV, ATT, PRE, END = 0x12, 0x1E, 0x3F, 0x40, 0x80
PNM, PID, AGE, SEX, TIM = 0x81, 0x82, 0x83, 0x84, 0x85
KNOWN_TAGS = set(range(0x01, 0x18)) | {WAV, ATT, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46,
                                       0x67, END} | set(range(0x81, 0x89))
# Definitions that may be given per channel inside MWF_ATT.
CHANNEL_TAGS = {BLK: 'blk', SEQ: 'seq', WFM: 'wfm', LDN: 'ldn', DTP: 'dtp', IVL: 'ivl',
                SEN: 'sen', OFF: 'off', NUL: 'nul'}

# MWF_DTP data types; 4 (16-bit status) is no waveform, 9 (AHA 8-bit
# difference compression) is not read.
DTYPES = {0: 'i2', 1: 'u2', 2: 'i4', 3: 'u1', 4: 'u2', 5: 'i1', 6: 'u4', 7: 'f4', 8: 'f8'}
STATUS_DTP = 4

# MWF_LDN lead codes: the ECG leads (SCP-ECG's codes, as Part 2 lists them) and
# the long-term / monitoring codes of Part 3 for an ECG whose lead is unknown.
ECG_CODES = {1: 'I', 2: 'II', 3: 'V1', 4: 'V2', 5: 'V3', 6: 'V4', 7: 'V5', 8: 'V6', 9: 'V7',
             11: 'V3R', 12: 'V4R', 13: 'V5R', 14: 'V6R', 15: 'V7R', 16: 'X', 17: 'Y', 18: 'Z',
             19: 'CC5', 20: 'CM5', 31: 'NASA', 32: 'CB4', 33: 'CB5', 34: 'CB6', 61: 'III',
             62: 'aVR', 63: 'aVL', 64: 'aVF', 65: '-aVR', 66: 'V8', 67: 'V9', 68: 'V8R',
             69: 'V9R', 70: 'D', 71: 'A', 72: 'J', 4166: 'ECG1', 4167: 'ECG2', 4168: 'ECG3',
             4169: 'ECG4'}
# Codes of the channels a monitor or Holter writes beside the ECG (named as ignored).
OTHER_CODES = {143: 'Blood pressure', 160: 'Impedance respiration', 175: 'SpO2',
               4160: 'Status', 4161: 'Body position', 4162: 'Body movement',
               4163: 'Respiration'}
# MWF_SEN unit codes other than 0 (volt), for the names of ignored channels.
SEN_UNITS = {1: 'mmHg', 2: 'Pa', 3: 'cmH2O', 4: 'mmHg/s', 5: 'dyne', 6: 'N', 7: '%',
             8: 'degC', 9: '/min', 10: '/s', 11: 'Ohm', 12: 'A', 13: 'rpm', 14: 'W', 15: 'dB',
             16: 'kg', 17: 'J', 18: 'dyne s m-2 cm-5', 19: 'L', 20: 'L/s', 21: 'L/min',
             22: 'cd'}
DOMINANT_BEAT = 9   # MWF_WFM of a median-beat frame: not the rhythm


# --------------------------------------------------------------------------
# The definitions.

def _definitions(buf, name, file):
    """The top-level definitions of an MFER file -> [(tag, channel, value)]
    (channel: MWF_ATT's channel number, with its nested definitions as
    value, a list of (tag, None, value)); stops at MWF_END. A truncated or
    malformed file raises a RecordError."""
    count = 0

    def length(pos):
        if pos >= len(buf):
            raise RecordError(name, f'{file}: truncated MFER file (a length ends at byte {pos})')
        first = buf[pos]
        if first < 0x80:
            return first, pos + 1
        if first == 0x80:
            return None, pos + 1
        n = first & 0x7F
        if n > 4 or pos + 1 + n > len(buf):
            raise RecordError(name, f'{file}: truncated or damaged MFER file (a length of {n} '
                                    f'bytes at byte {pos})')
        return int.from_bytes(buf[pos + 1:pos + 1 + n], 'big'), pos + 1 + n

    def items(pos, end, nested):
        nonlocal count
        got = []
        while pos < end:
            tag = buf[pos]
            if tag == 0:
                if nested and pos + 1 < end and buf[pos + 1] == 0:
                    return got, pos + 2          # end of an indefinite length
                pos += 1                         # MWF_ZRO: padding
                continue
            count += 1
            if count > MFER_MAX_DEFINITIONS:
                raise RecordError(name, f'{file}: MFER file holds over {MFER_MAX_DEFINITIONS} '
                                        f'definitions (real files: a few hundred)')
            pos += 1
            if tag == END and not nested:
                return got, pos
            channel = None
            if tag == ATT:
                if nested:
                    raise RecordError(name, f'{file}: MWF_ATT nested in MWF_ATT (damaged file)')
                channel = 0
                for k in range(5):
                    if pos >= end or k == 4:
                        raise RecordError(name, f'{file}: truncated or damaged MFER channel '
                                                f'number at byte {pos}')
                    b = buf[pos]
                    pos += 1
                    channel = channel << 7 | b & 0x7F
                    if not b & 0x80:
                        break
            n, pos = length(pos)
            if n is None:
                if tag != ATT:
                    raise RecordError(name, f'{file}: indefinite length of tag 0x{tag:02X} '
                                            f'(only a channel definition may have one)')
                inner, pos = items(pos, end, True)
                got.append((tag, channel, inner))
                continue
            if pos + n > end:
                raise RecordError(name, f'{file}: truncated MFER file (tag 0x{tag:02X} at byte '
                                        f'{pos} declares {n} bytes, {max(end - pos, 0)} are left)')
            if tag == ATT:
                got.append((tag, channel, items(pos, pos + n, True)[0]))
            else:
                got.append((tag, None, buf[pos:pos + n] if nested else (pos, n)))
            pos += n
        if nested and end == len(buf):
            raise RecordError(name, f'{file}: truncated MFER file (a channel definition is '
                                    f'not closed)')
        return got, pos

    out, _ = items(0, len(buf), False)
    return out


def _uint(value, big):
    return int.from_bytes(value, 'big' if big else 'little')


def _scaled(value, big):
    """MWF_IVL / MWF_SEN: unit code, exponent (int8), mantissa (signed, in
    the byte order) -> (unit, mantissa x 10^exponent as an exact Fraction)."""
    if len(value) < 3 or len(value) > 6:
        return None
    exp = int.from_bytes(value[1:2], 'big', signed=True)
    mant = int.from_bytes(value[2:], 'big' if big else 'little', signed=True)
    return value[0], Fraction(mant) * Fraction(10) ** exp


def _set(defs, tag, value, big, name, file):
    """One definition into defs (the file's or a channel's)."""
    key = CHANNEL_TAGS[tag]
    if not value:
        defs.pop(key, None)      # an empty definition restores the default
        return
    if tag in (BLK, SEQ):
        if len(value) > 4:
            raise RecordError(name, f'{file}: MFER {key.upper()} of {len(value)} bytes')
        defs[key] = _uint(value, big)
    elif tag == DTP:
        if value[0] == 9:
            raise RecordError(name, f'{file}: AHA-compressed MFER data (MWF_DTP 9) is not read')
        if value[0] not in DTYPES:
            raise RecordError(name, f'{file}: unknown MFER data type {value[0]}')
        defs[key] = value[0]
    elif tag in (IVL, SEN):
        got = _scaled(value, big)
        if got is None:
            raise RecordError(name, f'{file}: MFER {key.upper()} of {len(value)} bytes '
                                    f'(unit, exponent and a 1-4 byte mantissa)')
        defs[key] = got
    elif tag in (OFF, NUL):
        defs[key] = (bytes(value), big)
    elif tag == WFM:
        defs[key] = _uint(value[:2], big)
    elif tag == LDN:
        code = value[0] if len(value) == 1 else _uint(value[:2], big)
        text = bytes(value[2:]).split(b'\x00')[0].decode('latin-1').strip()
        defs[key] = (code, text)


def _typed(raw, dtype):
    """MWF_OFF / MWF_NUL's value, (bytes, big-endian), in a channel's type."""
    data, big = raw
    dt = np.dtype(dtype).newbyteorder('>' if big else '<')
    return float(np.frombuffer(data[:dt.itemsize], dt)[0]) if len(data) >= dt.itemsize else None


# --------------------------------------------------------------------------
# The reader.

def read_mfer(path):
    """MFER (ISO 22077-1) resting 12-lead, monitor and Holter exports: the
    ECG channels at the ECG's rate (each lead by its MWF_LDN code; an ECG of
    unknown lead, codes 4166-4169 'ECG1'-'ECG4', or a voltage channel without
    a code stays a channel without a lead: --lead-map names it), in uV from
    MWF_SEN; non-ECG channels (pressure, SpO2, respiration, status, any
    channel not in volts) and channels at another rate are ignored and named
    (rec.ignored). Consecutive frames of the same layout are joined (a gap
    that MWF_PNT declares is NaN); a median-beat frame (MWF_WFM 9) and frames
    that change the layout are left out. Age and sex are read; the patient's
    name and ID only decide whether the file's stem may name the record."""
    path = Path(path)
    name, file = path.stem, path.name
    size = path.stat().st_size
    if size > MAX_MFER_BYTES:
        raise RecordError(name, f'{file} is {size / 2 ** 20:.1f} MB, over the '
                                f'{MAX_MFER_BYTES >> 20} MB an MFER file is read to')
    buf = memoryview(path.read_bytes())
    big, chn, top, chans, pointer = True, 1, {}, {}, None
    # The definitions in force at each frame, copied only when they changed
    # since the last frame (a Holter's thousand frames share one copy), and at
    # most MFER_MAX_LAYOUTS times: later layouts could not join the rhythm.
    snap, layouts = None, 0
    frames, ids, sex, age, born, when = [], [], 'Unknown', float('nan'), None, None
    for tag, channel, value in _definitions(buf, name, file):
        if tag == ATT:
            defs = chans.setdefault(channel, {})
            for t, _, v in value:
                if t in CHANNEL_TAGS:
                    _set(defs, t, v, big, name, file)
            snap = None
            continue
        if tag == WAV:
            if snap is None and layouts < MFER_MAX_LAYOUTS:
                layouts += 1
                snap = (chn, dict(top), {c: dict(d) for c, d in chans.items() if c < chn}, big)
            if snap is not None:
                frames.append((*value, snap, pointer))
            pointer = None
            continue
        if tag in (BLE, CHN) or tag in CHANNEL_TAGS:
            snap = None
        start, n = value
        v = buf[start:start + n]
        if tag == BLE:
            if n and v[0] not in (0, 1):
                raise RecordError(name, f'{file}: MFER byte order {v[0]} (0 or 1)')
            big = not n or v[0] == 0
        elif tag == CHN:
            chn = _uint(v, big) if n else 1
            if n > 4 or not 0 < chn:
                raise RecordError(name, f'{file}: MFER file declares {chn} channels')
            _budget(name, path, leads=chn, what='MFER frame')
        elif tag == PNT:
            pointer = _uint(v, big) if n and n <= 4 else None
        elif tag == CMP and n >= 2 and _uint(v[:2], big) != 0:
            raise RecordError(name, f'{file}: compressed MFER data (MWF_CMP) is not read')
        elif tag in CHANNEL_TAGS:
            _set(top, tag, v, big, name, file)
        elif tag in (PNM, PID):
            ids.append(bytes(v).decode('latin-1', errors='replace').replace('^', ' ').strip())
        elif tag == SEX and n:
            sex = {1: 'Male', 2: 'Female'}.get(v[0], 'Unknown')
        elif tag == AGE and n:
            if 0 < v[0] < 150:
                age = float(v[0])
            if n >= 7:
                born = _date(_uint(v[3:5], big), v[5], v[6])
        elif tag == TIM and n >= 4:
            when = _date(_uint(v[:2], big), v[2], v[3])
    if np.isnan(age) and born:
        age = _age_between(born, when)
    if not frames:
        raise RecordError(name, f'{file}: MFER file without waveform data (MWF_WAV)')
    return _build(path, name, file, buf, frames, ids, age, sex)


def _date(year, month, day):
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _channels(chn, top, chans):
    """Each channel's definitions in force (the file's, overridden by its
    own MWF_ATT; a file-level MWF_LDN names channel 1 only)."""
    out = []
    for c in range(chn):
        d = {k: v for k, v in top.items() if k != 'ldn' or c == 0}
        d.update(chans.get(c, {}))
        out.append(d)
    return out


def _describe(c, d):
    """A channel -> (name, is ECG, fs, uV per unit or None)."""
    code, text = d.get('ldn', (None, ''))
    label = (ECG_CODES.get(code) or OTHER_CODES.get(code) or text or
             (f'lead code {code}' if code is not None else f'channel {c + 1}'))
    unit, scale = d.get('sen', (0, None))
    ivl = d.get('ivl', (1, Fraction(1, 1000)))   # the default: 1 ms
    if ivl[0] == 0 and ivl[1] > 0:
        fs = float(ivl[1])
    elif ivl[0] == 1 and ivl[1] > 0:
        fs = float(1 / ivl[1])
    else:
        fs = float('nan')             # a distance, or 0: no time base
    ecg = (code in ECG_CODES or code is None) and unit == 0 and \
        d.get('dtp', 0) != STATUS_DTP and code not in OTHER_CODES
    if code is None and d.get('wfm') in range(40, 44):
        ecg = False                   # EEG waveform types
    uv = float(scale * 1_000_000) if scale is not None and unit == 0 else None
    if unit != 0 and label == f'channel {c + 1}':
        label += f' ({SEN_UNITS.get(unit, f"unit {unit}")})'
    return label, ecg, fs, uv


def _build(path, name, file, buf, frames, ids, age, sex):
    rhythm = [f for f in frames if f[2][1].get('wfm') != DOMINANT_BEAT]
    if not rhythm:
        raise RecordError(name, f'{file}: MFER file holds a median beat only, no rhythm')
    snap = rhythm[0][2]
    chn, top, chans, big = snap
    if any('seq' in d and d['seq'] != top.get('seq') for d in chans.values()):
        raise RecordError(name, f'{file}: per-channel MFER sequence counts are not read')
    defs = _channels(chn, top, chans)
    info = [_describe(c, d) for c, d in enumerate(defs)]
    ecg = [c for c, i in enumerate(info) if i[1]]
    if not ecg:
        raise RecordError(name, f'{file}: MFER file holds no ECG channel (an ECG lead code '
                                f"or none, in volts); it holds {', '.join(i[0] for i in info)}")
    rates = [info[c][2] for c in ecg]
    fs = max(set(rates), key=rates.count)
    _budget(name, path, fs=fs)
    blk = [d.get('blk', 1) for d in defs]
    first = next(c for c in ecg if info[c][2] == fs)
    kept = [c for c in ecg if info[c][2] == fs and blk[c] == blk[first]]
    missing = [info[c][0] for c in kept if info[c][3] is None]
    if missing:
        raise RecordError(name, f"{file}: MFER ECG channel {', '.join(missing)} gives no "
                                f'sampling resolution (MWF_SEN)')
    ignored = [info[c][0] for c in range(chn) if c not in kept]
    key, same = _layout(chn, defs), {id(snap)}
    run = [rhythm[0]]
    for f in rhythm[1:]:
        if id(f[2]) not in same:
            fchn, ftop, fchans, fbig = f[2]
            if (fchn, fbig) != (chn, big) or _layout(fchn, _channels(fchn, ftop, fchans)) != key \
                    or ftop.get('seq') != top.get('seq'):
                break
            same.add(id(f[2]))
        run.append(f)
    # Declared sizes, before anything is decoded: the kept channels' samples
    # (with any gap a pointer declares) against the budget, each frame's
    # bytes against what the file holds.
    order = '>' if big else '<'
    dts = [np.dtype(DTYPES[d.get('dtp', 0)]).newbyteorder(order) for d in defs]
    per_seq = sum(b * dt.itemsize for b, dt in zip(blk, dts))
    if not per_seq:
        raise RecordError(name, f'{file}: MFER data block length (MWF_BLK) is 0')
    plan, total = [], 0
    for start, n, _, pnt in run:
        seq = n // per_seq if top.get('seq') is None else top['seq']
        rows = seq * blk[kept[0]]
        gap = pnt - total if pnt is not None and pnt > total else 0
        plan.append((start, n, seq, gap))
        total += gap + rows
        _budget(name, path, leads=len(kept), values=len(kept) * total, what='MFER file')
    for _, n, seq, _ in plan:
        if per_seq > n:
            raise RecordError(name, f'{file}: MFER frame of {n} bytes is shorter than one '
                                    f'sequence of its channels ({per_seq} bytes): a damaged '
                                    f'block length or data type')
        if seq * per_seq > n:
            raise RecordError(name, f'{file}: MFER waveform data ends early ({n} bytes, its '
                                    f'{seq} sequences need {seq * per_seq}): a truncated file')
    # Decoding: a frame is SEQ records of each channel's block in turn.
    layout = np.dtype([(f'c{c}', dts[c], (blk[c],)) for c in range(chn)])
    pieces = {c: [] for c in kept}
    for start, _, seq, gap in plan:
        arr = np.frombuffer(buf, layout, count=seq, offset=start)
        for c in kept:
            if gap:
                pieces[c].append(np.full(gap, np.nan))
            pieces[c].append(arr[f'c{c}'].reshape(-1).astype(np.float64))
        del arr
    signal = np.empty((total, len(kept)))
    for j, c in enumerate(kept):
        x = np.concatenate(pieces.pop(c))
        d = defs[c]
        if 'nul' in d:
            null = _typed(d['nul'], DTYPES[d.get('dtp', 0)])
            if null is not None:
                x[x == null] = np.nan
        off = _typed(d['off'], DTYPES[d.get('dtp', 0)]) if 'off' in d else None
        if off:
            x += off
        x *= info[c][3]
        signal[:, j] = x
    return _record(path, record_name(path, 'mfer', ids), fs, signal,
                   [info[c][0] for c in kept], ['uV'] * len(kept), 'mfer', age=age, sex=sex,
                   ignored=ignored)


def _layout(chn, defs):
    """What must match for frames to join: each channel's block, type, rate,
    scale, offset, null value, lead and waveform type."""
    return tuple(tuple(d.get(k) for k in ('blk', 'dtp', 'ivl', 'sen', 'off', 'nul', 'ldn',
                                          'wfm')) for d in defs[:chn])
