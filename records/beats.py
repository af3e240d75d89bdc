"""Beat annotations: a WFDB record's .atr or an ISHNE Holter's .ann."""
from pathlib import Path
from typing import NamedTuple

import numpy as np

from records.errors import RecordError
from records.find import record_base
from records.formats.ishne import read_ishne_beats
from records.read import read_record

# --------------------------------------------------------------------------
# Beat annotations.

# wfdb's beat codes (MIT-BIH): everything else ('+' rhythm change, '~' noise,
# '|', '"' comments, ...) marks no QRS complex.
BEAT_SYMBOLS = frozenset('NLRBAaJSVrFejnE/fQ?')


class Beats(NamedTuple):
    samples: np.ndarray   # int64, at fs, from the record's start
    symbols: list         # wfdb beat codes, one per sample
    fs: float             # the annotation's rate (its own, else the header's)


def read_beats(path, stop=None, fs=None):
    """The beats of a record -> Beats(samples, symbols, fs), the non-beat
    annotations dropped; only those before sample `stop` (at fs) when given;
    None when the record has none. The one beat reader of every script
    (visualize.py, the QRS harness, shap_population.py): a WFDB record's .atr,
    or an ISHNE Holter's .ann beside its .ecg (formats.read_ishne_beats; the
    .ann gives no rate: `fs`, else the record's). Raises RecordError when the
    file is unreadable."""
    import wfdb  # here, not on top: 0.2 s to import, for annotations only
    base = record_base(path)
    atr = Path(f'{base}.atr')
    if not atr.is_file():
        return _ishne_beats(Path(path), stop, fs)
    try:
        ann = wfdb.rdann(str(base), 'atr', sampto=stop)
    except Exception as e:  # noqa: BLE001 (wfdb raises many types on a broken file)
        raise RecordError(base.name, f'unreadable {atr} ({type(e).__name__}: {e})') from None
    if not ann.fs:
        raise RecordError(base.name, f'{atr} gives no sampling rate and {base}.hea '
                                     'is missing')
    keep = [i for i, s in enumerate(ann.symbol) if s in BEAT_SYMBOLS]
    return Beats(np.asarray(ann.sample, dtype=np.int64)[keep],
                 [ann.symbol[i] for i in keep], float(ann.fs))


def _ishne_beats(path, stop, fs):
    """An ISHNE .ann beside RECORD.ecg -> Beats, or None without one."""
    ann = path.with_suffix('.ann') if path.suffix.lower() == '.ecg' else Path(f'{path}.ann')
    if not ann.is_file():
        return None
    samples, labels = read_ishne_beats(ann)
    fs = float(fs or read_record(path).fs)
    keep = [i for i, s in enumerate(labels) if s in BEAT_SYMBOLS
            and (stop is None or samples[i] < stop)]
    return Beats(samples[keep], [str(labels[i]) for i in keep], fs)
