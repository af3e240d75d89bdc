"""MFER files (ISO 22077-1, `.mwf`) that the tests write from the standard's
tag list: TLV definitions, channel attributes, block-interleaved frames,
either byte order; and a hostile one declaring 10^9 sequences."""
import struct

import numpy as np
from helpers import ecg_like

from records import LEADS

# MWF_LDN codes of the 12 leads (the order a Nihon Kohden cart writes them).
CODES = {'I': 1, 'II': 2, 'III': 61, 'aVR': 62, 'aVL': 63, 'aVF': 64, 'V1': 3, 'V2': 4,
         'V3': 5, 'V4': 6, 'V5': 7, 'V6': 8}
PID, PATIENT = 'PID4455667', 'Yamadaxq^Tarouzz'


# --------------------------------------------------------------------------
# A writer, from the standard's tag list.

def tlv(tag, value, channel=None):
    """One definition: the tag (MWF_ATT: then the channel number, 0-based),
    the length (one byte below 128, else 0x80 | n and n big-endian bytes),
    the value."""
    head = bytes([tag])
    if channel is not None:   # 7 bits a byte, the high bit on all but the last
        groups = [channel >> 7 * k & 0x7F for k in range(max(1, (channel.bit_length() + 6) // 7))]
        head += bytes([g | 0x80 for g in groups[:0:-1]] + [groups[0]])
    n = len(value)
    if n < 0x80:
        return head + bytes([n]) + value
    k = (n.bit_length() + 7) // 8
    return head + bytes([0x80 | k]) + n.to_bytes(k, 'big') + value


def scaled(unit, exponent, mantissa, big):
    """MWF_IVL / MWF_SEN: unit code, exponent (int8), mantissa (int32)."""
    return bytes([unit]) + struct.pack('b', exponent) + \
        mantissa.to_bytes(4, 'big' if big else 'little', signed=True)


def mfer_file(path, channels, big=True, blk=500, ivl=(1, -3, 2), sen=(0, -8, 125), dtp=0,
              seq=None, identifiers=True, extra=b''):
    """An MFER file: a preamble, the byte order, the file's defaults (channels,
    block, sequences, type, interval, resolution), each channel's MWF_ATT
    (its lead code and its overrides: 'blk', 'ivl', 'sen', 'dtp', 'off',
    'nul'), one frame of the samples block-interleaved, MWF_END.
    channels: [(lead code, int samples, overrides)]; ivl (1 = s, exponent,
    mantissa): 2 ms, 500 Hz; sen (0 = V, ...): 1.25 uV."""
    order = '>' if big else '<'

    def u32(v):
        return struct.pack(order + 'I', v)
    types = {0: 'i2', 1: 'u2', 2: 'i4', 3: 'u1', 5: 'i1', 6: 'u4', 7: 'f4', 8: 'f8', 9: 'i1'}
    out = tlv(0x40, b'MFR Standard 12-lead ECG'.ljust(32)) + tlv(0x01, bytes([0 if big else 1]))
    out += tlv(0x02, bytes([1, 1, 0])) + tlv(0x03, b'ASCII')
    if identifiers:
        out += tlv(0x81, PATIENT.encode()) + tlv(0x82, PID.encode()) + tlv(0x84, b'\x01')
        out += tlv(0x83, bytes([61]) + struct.pack(order + 'H', 0) +
                   struct.pack(order + 'H', 1960) + bytes([4, 5]))
    n_seq = seq if seq is not None else len(channels[0][1]) // (channels[0][2].get('blk', blk))
    out += tlv(0x08, struct.pack(order + 'H', 1)) + tlv(0x05, u32(len(channels)))
    out += tlv(0x04, u32(blk)) + tlv(0x06, u32(n_seq)) + tlv(0x0A, bytes([dtp]))
    out += tlv(0x0B, scaled(*ivl, big)) + tlv(0x0C, scaled(*sen, big)) + extra
    blocks = []
    for c, (code, _, own) in enumerate(channels):
        att = tlv(0x09, struct.pack(order + 'H', code))
        for key, tag in (('blk', 0x04), ('dtp', 0x0A)):
            if key in own:
                att += tlv(tag, u32(own[key]) if key == 'blk' else bytes([own[key]]))
        for key, tag in (('ivl', 0x0B), ('sen', 0x0C)):
            if key in own:
                att += tlv(tag, scaled(*own[key], big))
        t = np.dtype(types[own.get('dtp', dtp)]).newbyteorder(order)
        for key, tag in (('off', 0x0D), ('nul', 0x12)):
            if key in own:
                att += tlv(tag, np.array([own[key]], t).tobytes())
        out += tlv(0x3F, att, channel=c)
        blocks.append((own.get('blk', blk), t))
    held = min(n_seq, len(channels[0][1]) // blocks[0][0])   # what the samples fill
    frame = b''.join(np.asarray(x[s * b:(s + 1) * b], t).tobytes()
                     for s in range(held) for (b, t), (_, x, _) in zip(blocks, channels))
    out += tlv(0x1E, frame) + bytes([0x80])
    path.write_bytes(out)
    return path


def twelve_leads(n=5000, seed=0):
    """12 leads x n of int16 counts (1.25 uV each) of an ECG-like signal."""
    return np.round(ecg_like(n, 500, 12, seed) * 800).astype(np.int16)


def hostile_mfer(path):
    """12 channels x 500 samples x 10^9 sequences declared over 2 kB of data."""
    return mfer_file(path, [(CODES[lead], np.zeros(1000, np.int16), {}) for lead in LEADS],
                     seq=1_000_000_000)
