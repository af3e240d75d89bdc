"""RecordError: the one error a bad record raises."""
from records.limits import REASON_MAX


class RecordError(Exception):
    """A record that cannot be used; str() is 'RECORD: reason'."""

    def __init__(self, record, reason):
        record, reason = _clip(str(record), 120), _clip(str(reason), REASON_MAX)
        super().__init__(f'{record}: {reason}')
        self.record = record
        self.reason = reason


def _clip(text, n):
    """A message part cut to n characters: a 10 MB header line must not be
    copied into an error, a log or a page."""
    return text if len(text) <= n else text[:n - 25] + f'... ({len(text)} characters)'
