"""Numbers in prose: one format for the whole book (`fmt`), and a value with its interval (`fmt_ci`)."""
from __future__ import annotations

import math
import numbers

from .. import validate


def _scalar(x):
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu()
        if x.numel() != 1:
            raise ValueError(f"x must be a single number, got a tensor of shape {tuple(x.shape)}")
        return x.item()
    if hasattr(x, "item") and getattr(x, "size", 1) == 1:  # numpy scalars and 1-element arrays
        return x.item()
    return x


MINUS = "\u2212"
TIMES = "\u00d7"
SUPERSCRIPT = str.maketrans("0123456789-", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079\u207b")


class Number(str):
    """A number formatted for the page: Markdown that reads the same in prose and inside `$...$` math.

    Its repr is its text, so an inline `{python}` value is inserted as it is: Quarto markdown-escapes a
    plain `str` (its repr is quoted), which turns `0.5` into `0\\.5`, a TeX accent inside math.
    `plain` is the text a reader sees (what `pdftotext` of the PDF finds).
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return str.__str__(self)

    @property
    def plain(self) -> str:
        return str.__str__(self).replace("\\%", "%")


def fmt(x, digits: int = 3, *, percent: bool = False) -> Number:
    """A number for prose and math: `digits` significant digits, a true minus sign, ints plain.

    Scientific when |x| < 1e-3 or >= 1e5, written 1.15 × 10⁻⁴ (Unicode superscripts, which
    unicode-math, MathJax and the PDF's fallback font all show). percent=True prints 100·x with `%`
    (escaped as `\\%`, which is a percent sign both in Markdown and in TeX math).
    """
    digits = validate.positive_int("digits", digits)
    x = _scalar(x)
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise ValueError(f"x must be a real number, got {x!r}")
    if percent:
        x = 100 * float(x)
    if isinstance(x, numbers.Integral):
        text = str(int(x))
    else:
        text = _decimal(float(x), digits)
    return Number(text.replace("-", MINUS) + ("\\%" if percent else ""))


def fmt_ci(mean, lo, hi, digits: int = 3, *, write=None) -> str:
    """A value with its interval, "mean [lo, hi]", each number written by `write(x, digits)` (default `fmt`)."""
    write = fmt if write is None else write
    return f"{write(mean, digits)} [{write(lo, digits)}, {write(hi, digits)}]"


def _decimal(x: float, digits: int) -> str:
    if not math.isfinite(x):
        raise ValueError(f"x must be finite, got {x!r}")
    if x == 0:
        return "0"
    if not 1e-3 <= abs(x) < 1e5:
        mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        power = "10" + str(int(exponent)).translate(SUPERSCRIPT)
        return f"{mantissa} {TIMES} {power}"
    rounded = float(f"{x:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    text = f"{rounded:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text
