"""Matplotlib figures as SVG markup for HTML pages and reports (no pyplot: nothing here
touches matplotlib's global state). A leaf: the questions, the history and the reports
draw with it."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def svg(figure: Figure) -> str:
    """A figure as SVG markup to sit inside HTML (no XML prologue)."""
    out = io.StringIO()
    figure.savefig(out, format="svg")
    markup = out.getvalue()
    return markup[markup.index("<svg") :]
