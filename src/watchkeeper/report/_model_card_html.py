"""HTML of a model card (``ModelCard.to_html`` reaches it through the render hook)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchkeeper.report.html import badge, esc, page

if TYPE_CHECKING:
    from watchkeeper.lifecycle import ModelCard

__all__ = ["render_model_card"]


def render_model_card(card: ModelCard) -> str:
    """The card as one self-contained HTML page."""
    parts = []
    for s in card.sections:
        parts.append(f"<h2>{esc(s.title)}</h2>")
        parts += [f"<p>{esc(p)}</p>" for p in s.text]
        if s.bullets:
            parts.append("<ul>" + "".join(f"<li>{esc(b)}</li>" for b in s.bullets) + "</ul>")
        for headers, rows in s.tables:
            head = "".join(f"<th>{esc(h)}</th>" for h in headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{_html_cell(h, c)}</td>" for h, c in zip(
                    headers, row, strict=True)) + "</tr>"
                for row in rows
            )  # fmt: skip
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return page(card.title, "".join(parts), subtitle="watchkeeper model card")


def _html_cell(header: str, cell: str) -> str:
    if header == "status" and cell in ("ok", "warn", "alert", "error", "insufficient_data"):
        return badge(cell)
    return esc(cell)
