"""The incident report as PDF (fpdf2, pure Python): the same sections as the HTML, page after page.

A Unicode TrueType font is used when the system has DejaVu Sans; otherwise the PDF core font, with the
characters it cannot draw replaced by "?" (the HTML and JSON files keep the exact text). Deterministic:
the creation date is the export time and nothing else varies between two renderings."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from irflow.engine.report import sections

# fontTools logs every subsetting pass at INFO; the report's logs are not the place for them.
logging.getLogger("fontTools").setLevel(logging.WARNING)
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))


def _font() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def render_pdf(doc: dict[str, Any]) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import WrapMode

    pdf = FPDF(orientation="landscape", format="A4")
    pdf.set_creation_date(datetime.fromisoformat(doc["exported_at"].replace("Z", "+00:00")))
    pdf.set_producer("irflow")
    pdf.set_title(f"Evidence report: {doc['incident']['title']}")
    pdf.set_auto_page_break(auto=True, margin=12)
    font = _font()
    if font is not None:
        pdf.add_font("report", "", str(font[0]))
        pdf.add_font("report", "B", str(font[1]))
        family = "report"

        def clean(text: str) -> str:
            return text
    else:
        family = "helvetica"

        def clean(text: str) -> str:
            return text.replace("—", "-").encode("latin-1", "replace").decode("latin-1")

    pdf.add_page()
    pdf.set_font(family, "B", 16)
    pdf.multi_cell(0, 8, clean(f"Evidence report: {doc['incident']['title']}"), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(family, "", 9)
    pdf.multi_cell(
        0,
        5,
        clean(f"Incident {doc['incident']['id']} · exported {doc['exported_at']}"),
        new_x="LMARGIN",
        new_y="NEXT",
    )
    for section in sections(doc):
        pdf.ln(3)
        pdf.set_font(family, "B", 12)
        pdf.multi_cell(0, 7, clean(section.title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, "", 8)
        for paragraph in section.paragraphs:
            pdf.multi_cell(0, 4.5, clean(paragraph), new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR)
        for table in section.tables:
            if table.caption:
                pdf.set_font(family, "", 8)
                pdf.multi_cell(
                    0, 4.5, clean(table.caption), new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR
                )
            pdf.set_font(family, "", 7)
            rows = table.rows or [["none", *[""] * (len(table.headers) - 1)]]
            with pdf.table(
                headings_style=_headings(family),
                line_height=3.5,
                wrapmode=WrapMode.CHAR,
                first_row_as_headings=True,
            ) as grid:
                for values in [table.headers, *rows]:
                    row = grid.row()
                    for value in values:
                        row.cell(clean(value))
            pdf.ln(2)
        for block in section.blocks:
            pdf.set_font(family, "B", 8)
            pdf.multi_cell(0, 4.5, clean(block.title), new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR)
            pdf.set_font(family, "", 7)
            pdf.multi_cell(
                0, 3.5, clean(block.text), border=1, new_x="LMARGIN", new_y="NEXT", wrapmode=WrapMode.CHAR
            )
            pdf.ln(2)
    return bytes(pdf.output())


def _headings(family: str) -> Any:
    from fpdf.fonts import FontFace

    return FontFace(family=family, emphasis="BOLD")
