"""ISHNE 1.0 Holter files and their .ann beat annotations."""
import struct
from datetime import date
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.formats.common import _age_between, _budget, record_name
from records.record import Record

# ISHNE 1.0 lead specification codes.
ISHNE_LEADS = {5: 'I', 6: 'II', 7: 'III', 8: 'aVR', 9: 'aVL', 10: 'aVF', 11: 'V1', 12: 'V2',
               13: 'V3', 14: 'V4', 15: 'V5', 16: 'V6'}


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
    if not 0 < nleads <= 12:
        raise RecordError(name, f'{Path(path).name}: ISHNE header gives {nleads} leads '
                                f'(1 to 12)')
    _budget(name, path, fs=fs)
    # The ECG block follows the 522-byte header and the variable-length block:
    # an offset elsewhere (+2 bytes rotates every lead) is a damaged file.
    if var_len < 0 or ecg_off != 522 + var_len:
        raise RecordError(name, f'{Path(path).name}: ISHNE header puts the ECG at byte '
                                f'{ecg_off}, not after its {var_len}-byte variable block '
                                f'(byte {522 + var_len}): a damaged header')
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
    ann = Path(path).with_suffix('.ann')
    return Record(name=record_name(path, 'ishne', [i for i in ids if i.lower() != 'none']),
                  path=path, fs=fs, sig_len=n, sig_names=names, units=['mV'] * nleads,
                  reader=lambda a, b: mm[a:b].astype(np.float64) * scale, format='ishne',
                  leads=[ISHNE_LEADS.get(c) for c in spec[:nleads]], age=age, sex=sex,
                  files=[Path(path)] + ([ann] if ann.is_file() else []),
                  fmts=['ishne'] * nleads, gains=np.full(nleads, 1.0) / scale,
                  baselines=np.zeros(nleads), limit=32767)


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
