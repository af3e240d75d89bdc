"""One ECG record: header fields now, samples on demand."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from records.errors import RecordError
from records.leads import channel_lead

UNITS_TO_MV = {'mv': 1.0, '': 1.0, 'uv': 1e-3, 'µv': 1e-3, 'μv': 1e-3, 'v': 1e3}


# --------------------------------------------------------------------------
# Records.

@dataclass(kw_only=True, eq=False, repr=False)
class Record:
    """One ECG record: header fields now, samples on demand (records/__init__.py
    describes what callers read). Every reader builds it in one call."""
    name: str
    path: Path
    fs: float                      # Hz
    sig_len: int                   # samples at fs
    sig_names: list                # the channel names as written in the file
    units: list                    # per channel as written ('mV', 'uV', ...)
    reader: Callable               # (start, stop) -> float64 samples in `units`
    format: str                    # 'wfdb', 'cpsc2018' (the original .mat) or a hospital
                                   # format's key ('dicom', 'muse', ...: records.formats)
    leads: list = None             # the standard lead of each channel (None: no lead);
                                   # default: sig_names by alias (channel_lead)
    age: float = float('nan')
    sex: str = 'Unknown'
    dx: list = None                # SNOMED-CT codes; None: no '# Dx:' comment (has_dx)
    comments: list = ()            # header comment lines
    files: list = ()               # header and signal files
    fmts: list = ()                # WFDB format of each channel ('16', '212', 'mat', ...)
    # The cart's own reading where a file carries one (records.formats): the
    # manufacturer's algorithm, never the project's.
    device_measurements: dict = field(default_factory=dict)
    device_statements: list = field(default_factory=list)
    ignored: list = ()             # channels a reader dropped (other rates, pressure, ...)
    # The ADC, for clip_limits(): digital = physical x gain + baseline, with
    # +-limit the largest digital value (None: unknown, no limits).
    gains: np.ndarray = None
    baselines: np.ndarray = None
    limit: float = None
    # Kept apart from the rhythm the model reads: the cart's median beat
    # (dict fs, leads, units, signal) and a CardioSoft file's full disclosure
    # (a longer Record of its own).
    median: dict = None
    full_disclosure: 'Record' = None
    has_dx: bool = field(init=False)
    # -1 for a channel whose name says it is its lead inverted ('-aVR' of the
    # Cabrera display, 'MDC_ECG_LEAD_-aVR', 'II (inverted)': channel_lead):
    # read() gives the lead itself, -1 x the samples as stored; 1 otherwise.
    signs: np.ndarray = field(init=False)

    def __post_init__(self):
        self.path, self.fs, self.sig_len = Path(self.path), float(self.fs), int(self.sig_len)
        self.sig_names, self.units = list(self.sig_names), list(self.units)
        named = [channel_lead(n) for n in self.sig_names]
        # A reader's own leads (from codes, or lead_name: None for an inverted
        # name) are completed by the names that say 'this lead, inverted'.
        self.leads = [lead for lead, _ in named] if self.leads is None else \
            [mine if mine is not None or sign > 0 else lead
             for (lead, sign), mine in zip(named, self.leads)]
        self.signs = np.array([-1.0 if sign < 0 and lead == mine else 1.0
                               for (lead, sign), mine in zip(named, self.leads)])
        self.has_dx = self.dx is not None
        self.dx = list(self.dx or [])
        self.comments, self.files, self.fmts = list(self.comments), list(self.files), \
            list(self.fmts)
        self.device_statements, self.ignored = list(self.device_statements), list(self.ignored)
        self.device_measurements = dict(self.device_measurements)
        if self.gains is not None:
            self.gains = np.asarray(self.gains, dtype=np.float64)
            self.baselines = np.asarray(self.baselines, dtype=np.float64)
        scale = [UNITS_TO_MV.get(u.strip().lower()) for u in self.units]
        self._scale = np.array([np.nan if s is None else s for s in scale])
        self._signal = None

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
            x = self.reader(start, stop)
        except RecordError:
            raise
        except Exception as e:  # noqa: BLE001 (every failure reaching a script is a RecordError)
            raise RecordError(self.name, f'unreadable signal ({type(e).__name__}: {e})') from None
        mult = np.where(np.isfinite(self._scale), self._scale, 1.0) * self.signs
        if (mult != 1).any():  # mV, and an inverted lead turned the right way up
            x = x * mult
        return x

    def close(self):
        """Let go of the samples and the files they come from (memory maps
        hold a deleted file's disk space, and on some systems block its
        removal): the header fields stay; reading samples raises RecordError."""
        def closed(start, stop):
            raise RecordError(self.name, 'samples no longer readable: the record was closed')
        self.reader, self._signal = closed, None
        if self.full_disclosure is not None:
            self.full_disclosure.close()

    @property
    def signal(self):
        if self._signal is None:
            self._signal = self.read(0, self.sig_len)
        return self._signal

    def clip_limits(self):
        """Physical (mV) value of each channel's ADC limits, or None."""
        if self.limit is None or self.gains is None:
            return None
        scale = np.where(np.isfinite(self._scale), self._scale, 1.0) * self.signs
        a = (self.limit - self.baselines) / self.gains * scale
        b = (-self.limit - self.baselines) / self.gains * scale
        # A negative gain (an inverted lead, legal in WFDB) swaps the limits.
        return np.minimum(a, b), np.maximum(a, b), np.abs(0.5 / self.gains * scale)
