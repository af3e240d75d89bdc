"""The global ECG measurements: one table of their keys, names and units.

Every list of them is derived from MEASUREMENTS: the dict keys measure.py
returns (KEYS), predict.py's CSV columns, expert_features.py's columns, the
rows of the app, its PDF report and the API, and the cart's own figures that
the format readers keep (DEVICE_KEYS, written as `device_<key>` columns). The
table lives in the record layer, not in measure.py, because the format
readers need the cart's keys and this layer imports nothing from the scripts
above it; measure.py re-exports it.
"""
from typing import NamedTuple


class Measurement(NamedTuple):
    key: str       # measure()'s key and predict.py's column
    abbrev: str    # as one printed line shows it ('QTcB'; an axis by its wave)
    name: str      # in words
    unit: str      # 'beats/min', 'ms' or 'degrees'
    ours: bool     # measure.py computes it
    cart: bool     # a cart may report it (records.Record.device_measurements)


MEASUREMENTS = (
    Measurement('hr', 'HR', 'heart rate', 'beats/min', True, True),
    Measurement('pr_ms', 'PR', 'PR interval', 'ms', True, True),
    Measurement('qrs_ms', 'QRS', 'QRS duration', 'ms', True, True),
    Measurement('qt_ms', 'QT', 'QT interval', 'ms', True, True),
    # Carts print one QTc, by their own formula (mostly Bazett); ours gives two.
    Measurement('qtc_ms', 'QTc', "QTc by the cart's formula", 'ms', False, True),
    Measurement('qtc_bazett_ms', 'QTcB', 'QTc, Bazett', 'ms', True, False),
    Measurement('qtc_fridericia_ms', 'QTcF', 'QTc, Fridericia', 'ms', True, False),
    Measurement('p_axis', 'P', 'P axis (frontal plane)', 'degrees', True, True),
    Measurement('qrs_axis', 'QRS', 'QRS axis (frontal plane)', 'degrees', True, True),
    Measurement('t_axis', 'T', 'T axis (frontal plane)', 'degrees', True, True),
)
BY_KEY = {m.key: m for m in MEASUREMENTS}
KEYS = tuple(m.key for m in MEASUREMENTS if m.ours)            # measure.py's, in this order
DEVICE_KEYS = tuple(m.key for m in MEASUREMENTS if m.cart)     # the cart's, in this order
AXES = tuple(m.key for m in MEASUREMENTS if m.unit == 'degrees')
DEVICE_PREFIX = 'device_'   # the cart's figures beside ours: device_hr, device_pr_ms, ...
# The cart's QTc is shown beside our Bazett QTc, the formula most carts use.
CART_BESIDE = {m.key: m.key for m in MEASUREMENTS if m.ours and m.cart} | \
    {'qtc_bazett_ms': 'qtc_ms'}


def device_column(key):
    """The column of the cart's figure `key`: 'pr_ms' -> 'device_pr_ms'."""
    return DEVICE_PREFIX + key
