"""A report's content as HTML (Jinja2 templates shipped in this package, any of them
replaced by a file of the same name in the organisation's template folder), with the
person's chart as SVG (the questions' own plot, of the inputs by title, none of them
protected), and the HTML as PDF (WeasyPrint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replay.reports.content import ReportContent
from replay.reports.wording import capitalised, exact


def render_html(content: ReportContent, templates: Path | None) -> str:
    from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, select_autoescape

    loaders: list[Any] = [FileSystemLoader(str(templates))] if templates else []
    environment = Environment(
        loader=ChoiceLoader([*loaders, PackageLoader("replay.reports", "templates")]),
        autoescape=select_autoescape(["html"]),
    )
    # jinja's `capitalize` lowers the rest of a label ("EU" would read "Eu")
    environment.filters["first_upper"] = capitalised
    environment.filters["exact"] = exact
    from replay.figures import svg
    from replay.questions.plots import contributions_figure  # matplotlib: only drawn here

    chart = svg(contributions_figure(content.chart, content.favourable)) if content.chart else ""
    return environment.get_template("report.html").render(report=content, chart=chart)


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML  # its Pango libraries load here, not on import of replay

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf
