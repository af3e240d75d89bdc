"""SCP-ECG (EN 1064 / ISO 11073-91064)."""
import binascii
import struct
from datetime import date
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import SCP_LEADS, _age, _age_between, _budget, _record, record_name
from records.limits import MAX_SCP_BYTES
from records.formats.muse import _stack

# --------------------------------------------------------------------------
# SCP-ECG (EN 1064), written by hand: no maintained Python library reads it.

# The default Huffman table (EN 1064 annex): 0 -> '0'; +-k (k = 1..8) -> k
# ones, a '0', a sign bit (1 = negative); '111111111' + '0' + an 8-bit and
# '1111111111' + a 16-bit two's-complement original value.

def _scp_huffman_default(data, count):
    """Decode up to `count` values of the default Huffman table from bytes
    (MSB first); fewer where the data ends. numpy finds each bit position's
    code length and value at once; only the walk from code to code is a
    Python loop, over a list of ints (no per-bit work in Python)."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8)).astype(np.int64)
    n = len(bits)
    b = np.r_[bits, np.zeros(26, np.int64)]
    ones = np.zeros(n, np.int64)   # leading ones from each position, at most 10
    run = np.ones(n, bool)
    for j in range(10):
        run &= b[j:j + n] == 1
        ones += run
    length = np.where(ones == 0, 1, np.where(ones < 9, ones + 2, np.where(ones == 9, 18, 26)))
    nxt = np.arange(n) + length
    nxt[nxt > n] = -1              # a code that runs past the data ends it
    nxt, pos, p = nxt.tolist(), [], 0
    for _ in range(count):
        if not 0 <= p < n or nxt[p] < 0:
            break
        pos.append(p)
        p = nxt[p]
    pos = np.array(pos, np.int64)
    k = ones[pos]
    sign = b[np.minimum(pos + k + 1, n + 25)]
    out = np.where(sign == 1, -k, k)
    for width, mark in ((8, 9), (16, 10)):
        at = pos[k == mark]
        if len(at):
            v = b[at[:, None] + 10 + np.arange(width)] @ (1 << np.arange(width - 1, -1, -1))
            out[k == mark] = v - (v >= 1 << (width - 1)) * (1 << width)
    return out


def _crc_ccitt(data):
    """CRC-CCITT (0x1021, initial 0xFFFF) as SCP-ECG uses for records and
    sections: binascii's, in C (the same polynomial, not reflected)."""
    return binascii.crc_hqx(data, 0xFFFF)


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
    size = Path(path).stat().st_size
    if size > MAX_SCP_BYTES:
        raise RecordError(name, f'{Path(path).name} is {size / 2 ** 20:.1f} MB, over the '
                                f'{MAX_SCP_BYTES >> 20} MB an SCP-ECG record can be')
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
    # EN 1064 numbers samples from 1 (a 10-s lead at 500 Hz is 1..5000). Some
    # writers start the ranges at 0 and keep the standard's end (0..5000 for
    # 5000 samples): in a file where a lead starts at 0, every start is read
    # as one more, so each lead holds end - start samples.
    zero = any(s == 0 for s, _, _ in leads)
    counts = [e - s + (not zero) for s, e, _ in leads]
    # the declared sizes, before any lead is decoded (leads are padded to the longest)
    _budget(name, path, fs=1e6 / interval if interval else 0.0, leads=nleads,
            values=nleads * max(counts, default=0), what='SCP-ECG')
    sizes = struct.unpack(f'<{nleads}H', s6[6:6 + 2 * nleads])
    offset, cols = 6 + 2 * nleads, []
    for count, size in zip(counts, sizes):
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
    return _record(path, record_name(path, 'scp', _scp_ids(sec.get(1, b''))), 1e6 / interval,
                   _stack(cols, name, path) * avm / 1e6, names,
                   ['mV'] * nleads, 'scp',
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
