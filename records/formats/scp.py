"""SCP-ECG (EN 1064 / ISO 11073-91064)."""
import binascii
import struct
from array import array
from datetime import date
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import SCP_LEADS, _age, _age_between, _budget, _record, record_name
from records.limits import (
    MAX_SCP_BYTES,
    SCP_BLOCK_BITS,
    SCP_MAX_CODES,
    SCP_MAX_DECIMATION,
    SCP_MAX_TABLES,
    SCP_TABLE_PASSES,
)
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
    us, first or second differences), Huffman-coded with the default table
    (section 2 = 19999) or the tables section 2 carries, or not coded;
    reference-beat subtraction (sections 4 and 5) and bimodal compression
    (section 6 byte 6) undone as EN 1064 and its annexes describe them;
    section 1 gives age and sex, section 7 the global measurements, section
    8/11 the statements."""
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
    fs, cols, codes = _scp_rhythm(sec, name, path)
    names = [SCP_LEADS.get(code, f'SCP lead {code}') for code in codes]
    age, sex = _scp_patient(sec.get(1, b''))
    meas = _scp_measures(sec.get(7, b''))
    return _record(path, record_name(path, 'scp', _scp_ids(sec.get(1, b''))), fs,
                   _stack(cols, name, path) / 1e6, names,
                   ['mV'] * len(cols), 'scp',
                   age, sex, leads=[SCP_LEADS.get(c) for c in codes], measurements=meas,
                   statements=_scp_statements(sec))


def _scp_leads(s3, name, file):
    """Section 3 -> (flags, [(first sample number, samples, lead code)]).
    EN 1064 numbers samples from 1 (a 10-s lead at 500 Hz is 1..5000). Some
    writers start the ranges at 0 and keep the standard's end (0..5000 for
    5000 samples): in a file where a lead starts at 0, every start is read
    as one more, so each lead holds end - start samples."""
    nleads, flags = (s3[0], s3[1]) if len(s3) >= 2 else (0, 0)
    if len(s3) < 2 + 9 * nleads:
        raise RecordError(name, f'{file}: SCP-ECG section 3 declares {nleads} leads in '
                                f'{len(s3)} bytes (corrupt section 3)')
    leads = [struct.unpack('<IIB', s3[2 + 9 * i:11 + 9 * i]) for i in range(nleads)]
    zero = any(s == 0 for s, _, _ in leads)
    return flags, [(s + zero, e - s + (not zero), code) for s, e, code in leads]


def _scp_rhythm(sec, name, path):
    """(rate Hz, [lead in nV], [lead codes]) from sections 2-6. Sizes are
    checked before anything is decoded: the rate, the leads x the longest
    lead, each lead's bytes, the tables and zones against the bytes present."""
    file = Path(path).name
    flags, leads = _scp_leads(sec[3], name, file)
    tables = _scp_tables(sec.get(2), name, file)
    avm, interval, diff, bimodal, chunks = _scp_chunks(sec[6], len(leads), name, file, 6)
    # bimodal compression's full rate is section 5's; a record that sets the
    # flag without a reference beat is read at section 6's rate, as the
    # OpenECG and ECGToolkit decoders read it (decimated data would end early)
    bimodal = bimodal and 5 in sec
    plan, full = {'k': 1, 'beat': None}, interval
    if flags & 1 or bimodal:
        plan.update(_scp_qrs(sec.get(4), name, file))
        if 5 not in sec:
            raise RecordError(name, f'{file}: SCP-ECG with reference-beat subtraction but no '
                                    f'section 5 (reference beat)')
        avm5, full, diff5, _, chunks5 = _scp_chunks(sec[5], len(leads), name, file, 5)
        plan['k'] = _scp_decimation(interval, full, bimodal, name, file)
    _budget(name, path, fs=1e6 / full if full else 0.0, leads=len(leads),
            values=len(leads) * max((c for _, c, _ in leads), default=0), what='SCP-ECG')
    if flags & 1:
        nref = plan['ms'] * 1000 // full
        _budget(name, path, values=len(leads) * nref, what='SCP-ECG reference beat')
        plan['beat'] = [avm5 * _scp_values(c, nref, tables, diff5, name, file,
                                           f'reference beat lead {j + 1}')
                        for j, c in enumerate(chunks5)]
    cols = [avm * _scp_lead(chunk, j, lead, tables, diff, plan, name, file)
            for j, (lead, chunk) in enumerate(zip(leads, chunks))]
    for j, (start, _, _) in enumerate(leads if plan['beat'] is not None else []):
        _scp_zones(plan['sub'][:, [0, 2]], plan['sub_n'], start, len(cols[j]),
                   'subtraction zone', name, file)
        _scp_add_beat(cols[j], plan['beat'][j], plan, start, name, file, f'lead {j + 1}')
    return 1e6 / full, cols, [code for _, _, code in leads]


def _scp_lead(chunk, j, lead, tables, diff, plan, name, file):
    """One lead's samples (stored units, float), back at the full rate when
    bimodal compression decimated them."""
    start, count, _ = lead
    what = f'lead {j + 1}'
    if plan['k'] == 1:
        return _scp_values(chunk, count, tables, diff, name, file, what).astype(np.float64)
    protected = plan['protected']
    _scp_zones(protected, plan['protected_n'], start, count, 'protected zone', name, file)
    key = (start, count)
    if plan.get('layout', (None,))[0] != key:   # leads share one range as a rule
        plan['layout'] = key, _scp_layout(protected, start, count, plan['k'])
    layout = plan['layout'][1]
    d = _scp_values(chunk, layout[3], tables, diff, name, file, what).astype(np.float64)
    steps = plan['sub'] if plan['beat'] is not None else plan['sub'][:0]
    return _scp_undecimate(d, layout, protected, steps, start)


def _scp_chunks(body, nleads, name, file, sid):
    """Section 5 or 6 -> (AVM nV, sample interval us, difference order, its
    byte 6, [each lead's bytes]); the lead sizes checked against the bytes
    the section holds."""
    head = 6 + 2 * nleads
    if len(body) < head:
        raise RecordError(name, f'{file}: SCP-ECG section {sid} is truncated ({len(body)} '
                                f'bytes for {nleads} leads)')
    avm, interval, diff, flag = struct.unpack('<HHBB', body[:6])
    sizes = struct.unpack(f'<{nleads}H', body[6:head])
    if head + sum(sizes) > len(body):
        raise RecordError(name, f'{file}: SCP-ECG section {sid} declares {sum(sizes)} bytes of '
                                f'lead data and holds {len(body) - head} (corrupt section {sid})')
    if diff > 2:
        raise RecordError(name, f'{file}: SCP-ECG section {sid} uses difference order {diff} '
                                f'(EN 1064 defines 0, 1 and 2)')
    ends = np.cumsum((head,) + sizes).tolist()
    return avm, interval, diff, flag, [body[a:b] for a, b in zip(ends, ends[1:])]


def _scp_values(chunk, count, tables, diff, name, file, what):
    """One lead's `count` samples (stored units) from its bytes: int16, the
    default Huffman table or section 2's tables; then undifferenced."""
    if not 0 < count <= 8 * len(chunk) + 2:  # every value takes a bit at least
        raise RecordError(name, f'{file}: SCP-ECG {what} declares {count} samples in '
                                f'{len(chunk)} bytes (corrupt section 3, 4 or 6)')
    if tables is None:
        d = np.frombuffer(chunk[:len(chunk) // 2 * 2], '<i2')[:count].astype(np.int64)
    elif tables == 'default':
        d = _scp_huffman_default(chunk, count)
    else:
        d = _scp_huffman_tables(chunk, count, tables, name, file, what)
    if len(d) < count:
        raise RecordError(name, f'{file}: SCP-ECG {what} data ends early ({len(d)} of {count} '
                                f'samples)')
    return _undiff(d, diff)


def _undiff(d, order):
    x = d.astype(np.int64)
    if order == 1:
        return np.cumsum(x)
    if order == 2 and len(x) > 2:
        # x[n] = d[n] + 2 x[n-1] - x[n-2]: the steps x[n] - x[n-1] are a cumsum
        step = np.cumsum(np.r_[x[1] - x[0], x[2:]])
        return np.r_[x[0], x[0] + np.cumsum(step)]
    return x


# --------------------------------------------------------------------------
# Section 2's own Huffman tables (EN 1064 5.5 and annex C). Each code
# structure: bits in the prefix, bits in the entire code, table mode switch
# (1 = a value, 0 = switch to the table numbered by the base value, from 1),
# base value (int16), base code (uint32, its first bit in the least
# significant place). A value code whose entire code is longer than its
# prefix carries the original value after the prefix (two's complement,
# entire - prefix bits); otherwise its value is the base value.

_SCP_CODE = np.dtype([('prefix', 'u1'), ('total', 'u1'), ('mode', 'u1'), ('base', '<i2'),
                      ('code', '<u4')])


def _scp_tables(s2, name, file):
    """Section 2 -> None (values stored as int16), 'default' (19999) or a
    list of tables ({'prefix', 'total', 'mode', 'base': per code;
    'lengths': [(prefix bits, its codes MSB first, sorted, their rows)]}).
    Counts are checked against the bytes present before anything is read."""
    if s2 is None or len(s2) < 2:
        return None
    ntab = struct.unpack('<H', s2[:2])[0]
    if ntab in (0, 19999):
        return None if ntab == 0 else 'default'
    tables, o = [], 2
    for t in range(min(ntab, SCP_MAX_TABLES + 1)):
        ncode = struct.unpack('<H', s2[o:o + 2])[0] if o + 2 <= len(s2) else None
        if ntab > SCP_MAX_TABLES or ncode is None or o + 2 + 9 * ncode > len(s2) or \
                sum(len(tab['prefix']) for tab in tables) + ncode > SCP_MAX_CODES:
            raise RecordError(name, f'{file}: SCP-ECG section 2 declares {ntab} Huffman tables '
                                    f'that its {len(s2)} bytes do not hold (table {t + 1}; at '
                                    f'most {SCP_MAX_TABLES} tables of {SCP_MAX_CODES} codes '
                                    f'in all are read)')
        rows = np.frombuffer(s2[o + 2:o + 2 + 9 * ncode], _SCP_CODE).copy()
        tables.append(_scp_table(rows, ntab, t, name, file))
        o += 2 + 9 * ncode
    return tables


def _scp_table(rows, ntab, t, name, file):
    """Table t's code structures checked against EN 1064, then indexed for
    decoding (base codes turned first bit first)."""
    for prefix, total, mode, base, code in rows.tolist():
        if not 1 <= prefix <= 32 or not prefix <= total <= prefix + 32 or mode > 1 or \
                (mode == 0 and not 1 <= base <= ntab) or code >> prefix:
            raise RecordError(name, f'{file}: SCP-ECG Huffman table {t + 1} has a code of '
                                    f'{prefix} prefix bits, {total} bits, mode {mode}, base '
                                    f'{base} that EN 1064 does not define (corrupt section 2)')
    if not len(rows):
        raise RecordError(name, f'{file}: SCP-ECG Huffman table {t + 1} holds no code')
    code = np.array([int(f'{c:0{p}b}'[::-1], 2) for p, c in zip(rows['prefix'], rows['code'])],
                    np.int64)
    table = {k: rows[k].astype(np.int64) for k in ('prefix', 'total', 'mode', 'base')}
    table['lengths'] = []
    for m in np.unique(table['prefix']).tolist():   # by prefix length: codes, their rows
        sel = np.flatnonzero(table['prefix'] == m)
        codes, first = np.unique(code[sel], return_index=True)
        table['lengths'].append((m, codes, sel[first]))
    return table


def _scp_codes_at(win, lo, hi, n, table):
    """A table at each bit position lo <= p < hi of a lead of n bits, as
    two int32 array.arrays: where the walk goes next (the next position
    after a value; -1 where the code runs past the data; -2 where no code
    matches; -3 - (32 next position + table - 1) for a switch to a table)
    and the value a value code stands for. The shortest prefix that matches
    is the code (a Huffman table's prefixes are free)."""
    at = np.arange(lo, hi)
    hit = np.full(hi - lo, -1, np.int64)
    for m, codes, rows in table['lengths']:
        key = win[lo:hi] >> (32 - m)
        i = np.minimum(np.searchsorted(codes, key), len(codes) - 1)
        ok = (codes[i] == key) & (hit < 0)
        hit[ok] = rows[i[ok]]
    row = np.maximum(hit, 0)
    prefix, total, base = table['prefix'][row], table['total'][row], table['base'][row]
    extra = total - prefix
    v = win[at + prefix] >> (32 - extra)
    v = v - ((v >> np.maximum(extra - 1, 0)) << extra) * (extra > 0)
    switch = table['mode'][row] == 0
    nxt = np.where(switch, -3 - 32 * (at + prefix) - (base - 1), at + total)
    nxt[~switch & (at + total > n)] = -1
    nxt[hit < 0] = -2
    return (array('i', nxt.astype(np.int32).tobytes()),
            array('i', np.where(extra > 0, v, base).astype(np.int32).tobytes()))




def _scp_huffman_tables(data, count, tables, name, file, what):
    """Up to `count` values decoded with section 2's tables, starting with
    table 1. numpy finds a table's codes at every position of a block of
    bits when the walk first enters that block with that table; the walk
    takes at least one bit a turn, so it ends with the data, and tables
    switched to and fro across the whole lead are refused beyond
    SCP_TABLE_PASSES passes over its bits."""
    bits = np.unpackbits(np.frombuffer(data, np.uint8)).astype(np.int64)
    n = len(bits)
    b, win = np.r_[bits, np.zeros(64, np.int64)], np.zeros(n + 32, np.int64)
    for j in range(32):
        win = (win << 1) | b[j:j + n + 32]
    blocks, out, p, t = {}, [], 0, 0
    lo, hi, nxt, value, append = 0, 0, None, None, out.append
    last = [(0, 0, None, None)] * len(tables)   # each table's block last used
    while p < n and len(out) < count:
        if not lo <= p < hi:
            lo = p // SCP_BLOCK_BITS * SCP_BLOCK_BITS
            hi = min(lo + SCP_BLOCK_BITS, n)
            if (t, lo) not in blocks:
                if len(blocks) >= SCP_TABLE_PASSES * -(-n // SCP_BLOCK_BITS):
                    raise RecordError(name, f'{file}: SCP-ECG {what} switches Huffman tables '
                                            f'across more than {SCP_TABLE_PASSES} passes '
                                            f'over its bits (corrupt section 2 or its data)')
                blocks[t, lo] = _scp_codes_at(win, lo, hi, n, tables[t])
            nxt, value = blocks[t, lo]
        q = nxt[p - lo]
        if q >= 0:
            append(value[p - lo])
            p = q
        elif q == -2:
            raise RecordError(name, f'{file}: SCP-ECG {what}: the bits at {p} match no code of '
                                    f'Huffman table {t + 1} (corrupt section 2 or its data)')
        elif q == -1:
            break
        else:
            p, to = divmod(-3 - q, 32)
            if to != t:
                last[t], t = (lo, hi, nxt, value), to
                lo, hi, nxt, value = last[t]
    return np.array(out, np.int64)


# --------------------------------------------------------------------------
# Reference-beat subtraction and bimodal compression (EN 1064 5.6-5.8 and
# annex E). Section 4 numbers samples as section 3 does (from 1), per QRS:
# its beat type, the subtraction zone SB..SE with the QRS fiducial fc, and
# the protected zone QB..QE. Reference beat 0 (section 5) is added back in
# each type-0 zone with its own fiducial sample (section 4) on fc.



def _scp_qrs(s4, name, file):
    """Section 4 -> {'ms': reference beat length, 'fcm': its fiducial
    sample, 'sub': (n, 3) int64 SB, fc, SE of the type-0 beats, 'protected':
    (n, 2) QB, QE}; a zone of (0, 0) is none. A version-1 section without
    protected zones protects the subtraction zones."""
    if s4 is None or len(s4) < 6:
        raise RecordError(name, f'{file}: SCP-ECG with reference-beat subtraction or bimodal '
                                f'compression but no section 4 (QRS locations)')
    ms, fcm, n = struct.unpack('<HHH', s4[:6])
    if 6 + 14 * n > len(s4):
        raise RecordError(name, f'{file}: SCP-ECG section 4 declares {n} QRS complexes in '
                                f'{len(s4)} bytes (corrupt section 4)')
    z = np.frombuffer(s4[6:6 + 14 * n], np.dtype([('t', '<u2'), ('sb', '<u4'), ('fc', '<u4'),
                                                   ('se', '<u4')]))
    zones = np.stack([z['t'], z['sb'], z['fc'], z['se']], 1).astype(np.int64).reshape(n, 4)
    o = 6 + 14 * n
    if o + 8 * n <= len(s4):
        protected = np.frombuffer(s4[o:o + 8 * n], '<u4').astype(np.int64).reshape(n, 2)
    else:
        protected = zones[:, [1, 3]]
    sub = np.flatnonzero((zones[:, 0] == 0) & (zones[:, [1, 3]] != 0).any(1))
    used = np.flatnonzero((protected != 0).any(1))
    return {'ms': ms, 'fcm': fcm, 'sub': zones[sub, 1:], 'sub_n': sub + 1,
            'protected': protected[used], 'protected_n': used + 1}


def _scp_decimation(interval, full, bimodal, name, file):
    """The factor the residual outside protected zones was decimated by:
    section 6's sample interval over section 5's (the full rate). Without
    bimodal compression both are one rate: EN 1064 stores the reference
    beat at the rhythm's rate."""
    if not bimodal:
        if interval != full:
            raise RecordError(name, f'{file}: SCP-ECG reference beat sampled every {full} us, '
                                    f'the rhythm every {interval} us: without bimodal '
                                    f'compression EN 1064 stores both at one rate')
        return 1
    if not full or interval % full or not 1 <= interval // full <= SCP_MAX_DECIMATION:
        raise RecordError(name, f'{file}: SCP-ECG bimodal compression with a decimation '
                                f'factor of {interval / full if full else 0:g} (rhythm every '
                                f'{interval} us, reference beat every {full} us; a whole '
                                f'number from 1 to {SCP_MAX_DECIMATION} is read)')
    return interval // full


def _scp_zones(pairs, numbers, start, count, what, name, file):
    """Refuse zones (n, 2: first and last sample numbers; `numbers`: their
    QRS numbers in section 4) that are out of order, overlap, or reach
    outside the lead's samples start..start + count - 1."""
    a, b = pairs[:, 0], pairs[:, 1]
    before = np.r_[start - 1, b[:-1]]
    bad = np.flatnonzero((a <= before) | (a > b) | (b >= start + count))
    if len(bad):
        i = bad[0]
        raise RecordError(name, f'{file}: SCP-ECG {what} {numbers[i]} (samples {a[i]}..{b[i]}) '
                                f'lies outside the signal (samples {start}..'
                                f'{start + count - 1}) or overlaps the one before (corrupt '
                                f'section 4)')


def _scp_layout(protected, start, count, k):
    """Where each full-rate sample of a bimodal lead comes from: (i0, i1,
    w, stored samples) with x[i] = d[i0] (1 - w) + d[i1] w. Protected zones
    are stored at the full rate; each run between them as its samples // k
    decimated values (block means, each placed at its block's sample k // 2,
    linear between them, held before the first and after the last), then
    its last samples % k as they are (EN 1064 annex E; as the OpenECG
    reference decoder reads them)."""
    i0, w, p, at = [], [], 0, start
    for qb, qe in protected.tolist() + [[start + count, start + count - 1]]:
        m, rest = divmod(qb - at, k)
        if m:
            t = np.clip((np.arange(m * k) - k // 2) / k, 0, m - 1)
            i0.append(p + np.floor(t))
            w.append(t - np.floor(t))
        keep = rest + qe - qb + 1
        i0.append(p + m + np.arange(keep))
        w.append(np.zeros(keep))
        p, at = p + m + keep, qe + 1
    i0 = np.concatenate(i0).astype(np.int64)
    return i0, np.minimum(i0 + 1, p - 1), np.concatenate(w), p


def _scp_undecimate(d, layout, protected, zones, start):
    """The residual back at the full rate: interpolated, then each sample
    outside the protected zones replaced by the mean of it and its two
    neighbours, except at a subtraction zone's edges, where the residual
    steps (the low-pass filter EN 1064's annex applies after interpolation)."""
    i0, i1, w, _ = layout
    x = d[i0] * (1 - w) + d[i1] * w
    n = len(x)
    marks = np.zeros(n + 1)
    np.add.at(marks, protected[:, 0] - start, 1)
    np.add.at(marks, protected[:, 1] - start + 1, -1)
    keep = np.cumsum(marks)[:n] > 0
    edges = np.r_[zones[:, 0] - 1, zones[:, 0], zones[:, 2], zones[:, 2] + 1] - start
    keep[edges[(edges >= 0) & (edges < n)]] = True
    keep[[0, -1]] = True
    smooth = x.copy()
    smooth[1:-1] = (x[:-2] + x[1:-1] + x[2:]) / 3
    return np.where(keep, x, smooth)


def _scp_add_beat(x, beat, plan, start, name, file, what):
    """Reference beat 0 added back (in place) in each type-0 subtraction
    zone (plan['sub']: rows SB, fc, SE), its fiducial sample (from 1) on
    the zone's fc."""
    zones = plan['sub']
    first = plan['fcm'] - 1 - (zones[:, 1] - zones[:, 0])     # the beat's sample at SB
    last = first + zones[:, 2] - zones[:, 0]
    bad = np.flatnonzero((first < 0) | (last >= len(beat)))
    if len(bad):
        i = bad[0]
        raise RecordError(name, f'{file}: SCP-ECG {what}: subtraction zone {plan["sub_n"][i]} '
                                f'needs reference-beat samples {first[i] + 1}..{last[i] + 1}, and '
                                f'section 4 declares a beat of {len(beat)} (corrupt section 4)')
    lens = zones[:, 2] - zones[:, 0] + 1
    offs = np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens)
    x[np.repeat(zones[:, 0] - start, lens) + offs] += beat[np.repeat(first, lens) + offs]


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
