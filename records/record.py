"""One ECG record: header fields now, samples on demand."""
from pathlib import Path

import numpy as np

from records.errors import RecordError
from records.leads import canonical_lead

UNITS_TO_MV = {'mv': 1.0, '': 1.0, 'uv': 1e-3, 'µv': 1e-3, 'μv': 1e-3, 'v': 1e3}


# --------------------------------------------------------------------------
# Records.

class Record:
    """One ECG record: header fields now, samples on demand (see the module
    docstring for the attributes)."""

    def __init__(self, name, path, fs, sig_len, sig_names, units, reader, limit=None,
                 age=float('nan'), sex='Unknown', dx=None, comments=(), files=(), fmts=()):
        self.name, self.path, self.fs, self.sig_len = name, Path(path), float(fs), int(sig_len)
        self.sig_names, self.units = list(sig_names), list(units)
        self.leads = [canonical_lead(n) for n in self.sig_names]
        self.age, self.sex = age, sex
        self.has_dx = dx is not None
        self.dx = list(dx or [])
        self.comments, self.files, self.fmts = list(comments), list(files), list(fmts)
        self._reader, self._limit = reader, limit
        scale = [UNITS_TO_MV.get(u.strip().lower()) for u in self.units]
        self._scale = np.array([np.nan if s is None else s for s in scale])
        self._signal = None
        # The cart's own reading (formats.py; PLAN.md keys), never the project's.
        self.device_measurements, self.device_statements = {}, []
        self.ignored = []  # channels a reader dropped (other rates, pressure, ...)

    def __repr__(self):
        return (f'Record({self.name!r}, {self.fs:g} Hz, {self.sig_len} samples, '
                f'leads {self.sig_names})')

    @property
    def duration(self):
        return self.sig_len / self.fs

    def read(self, start=0, stop=None):
        """Samples [start, stop) of every channel: float64 mV (NaN = missing;
        a channel in unknown units stays in its own)."""
        stop = self.sig_len if stop is None else min(int(stop), self.sig_len)
        start = max(0, int(start))
        if stop <= start:
            return np.zeros((0, len(self.sig_names)))
        try:
            x = self._reader(start, stop)
        except RecordError:
            raise
        except Exception as e:  # noqa: BLE001 (every failure reaching a script is a RecordError)
            raise RecordError(self.name, f'unreadable signal ({type(e).__name__}: {e})') from None
        known = np.isfinite(self._scale)
        if (self._scale[known] != 1).any():
            x = x * np.where(known, self._scale, 1.0)
        return x

    @property
    def signal(self):
        if self._signal is None:
            self._signal = self.read(0, self.sig_len)
        return self._signal

    def clip_limits(self):
        """Physical (mV) value of each channel's ADC limits, or None."""
        if self._limit is None or not hasattr(self, '_gains'):
            return None
        scale = np.where(np.isfinite(self._scale), self._scale, 1.0)
        a = (self._limit - self._baselines) / self._gains * scale
        b = (-self._limit - self._baselines) / self._gains * scale
        # A negative gain (an inverted lead, legal in WFDB) swaps the limits.
        return np.minimum(a, b), np.maximum(a, b), np.abs(0.5 / self._gains * scale)
