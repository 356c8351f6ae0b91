"""Numbers as people write them: an accuracy typed on a command line, in a spreadsheet or a model card.

One reader (:func:`parse_metric`) for the importers (:mod:`recsys.importers`) and for the results given on
the command line (``recsys topk --known``, ``--results``). Standard library only: the answering path imports it.
"""

from __future__ import annotations

import re

__all__ = ["parse_metric", "VALUE_FORMS"]

_NUMBER = r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?"
_METRIC_TEXT = re.compile(rf"^\s*\(?\s*({_NUMBER})\s*(%?)\s*(?:(?:±|\+/-|\+-)\s*{_NUMBER}\s*%?)?\s*\)?\s*$")
VALUE_FORMS = "a number such as 0.912, 91.2, 91.2% or 91.2 ± 0.3"


def parse_metric(raw) -> tuple[float | None, bool, str | None]:
    """``(value, written_as_percent, problem)`` of one metric value.

    Numbers are taken as they are; strings may read ``0.912``, ``91.2``, ``91.2%``, ``91.2 ± 0.3`` or
    ``91.2 +/- 0.3`` (the spread is dropped; a ``%`` sign divides by 100). ``problem`` names why a
    value is refused (then ``value`` is None).
    """
    if isinstance(raw, bool):
        return None, False, f"{raw!r} is not a number"
    if isinstance(raw, (int, float)):
        return float(raw), False, None
    if hasattr(raw, "item") and not isinstance(raw, (str, bytes)):  # a numpy scalar
        try:
            return float(raw.item()), False, None
        except (TypeError, ValueError):
            pass
    text = str(raw)
    m = _METRIC_TEXT.match(text)
    if m is None:
        try:
            return float(text.strip()), False, None  # 'nan', 'inf', '1e-3' ...
        except ValueError:
            shown = text if len(text) <= 40 else text[:37] + "..."
            return None, False, f"{shown!r} is not {VALUE_FORMS}"
    number = m.group(1)
    if "," in number:
        if "." in number:
            return None, False, f"{text.strip()!r} mixes '.' and ',' in one number; give {VALUE_FORMS}"
        number = number.replace(",", ".")  # a decimal comma (91,2)
    value = float(number)
    return (float(f"{value / 100.0:.12g}"), True, None) if m.group(2) else (value, False, None)
