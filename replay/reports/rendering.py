"""A report's content as HTML (Jinja2 templates shipped in this package, any of them
replaced by a file of the same name in the organisation's template folder), its chart
as SVG (matplotlib) and the HTML as PDF (WeasyPrint)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from replay.reports.content import ReportContent


def contributions_svg(content: ReportContent) -> str:
    """A bar chart of what moved the decision, strongest first (SVG, embedded)."""
    from matplotlib.figure import Figure  # only reports pay for matplotlib

    shown = content.contributions[:8][::-1]
    figure = Figure(figsize=(6, 0.5 + 0.4 * max(len(shown), 1)), dpi=100)
    axes = figure.subplots()
    effects = [item["decision"] for item in shown]
    colours = ["tab:green" if effect > 0 else "tab:red" for effect in effects]
    axes.barh([item["feature"] for item in shown], effects, color=colours)
    axes.axvline(0, color="0.3", linewidth=0.8)
    axes.set_xlabel(f"effect on reaching {content.favourable}")
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg")
    svg = out.getvalue()
    return svg[svg.index("<svg") :]  # without the XML prologue, to sit inside HTML


def render_html(content: ReportContent, templates: Path | None) -> str:
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

    loaders: list[Any] = [FileSystemLoader(str(templates))] if templates else []
    environment = Environment(
        loader=ChoiceLoader([*loaders, PackageLoader("replay.reports", "templates")]),
        autoescape=select_autoescape(["html"]),
    )
    return environment.get_template("report.html").render(
        report=content, chart=contributions_svg(content)
    )


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML  # its Pango libraries load here, not on import of replay

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
