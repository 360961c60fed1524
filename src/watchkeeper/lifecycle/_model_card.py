"""Model cards (Mitchell et al., 2019) for registered versions, in Markdown and HTML.

A card is built only from what is recorded: the registry's version record and audit trail,
the reference profile stored with the version, and the version's gate report. Nothing is
recomputed from a model. The gate report is passed in, or found through the version's
``gate_report`` tag (the path of the JSON report written by ``watchkeeper validate --json``).
Tags ``intended_use``, ``out_of_scope``, ``limitations`` and ``parent_version`` fill the
sections of the same name when present.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.exceptions import InputError

__all__ = ["CardSection", "ModelCard", "model_card"]

Table = tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]
_USE_TAGS = ("intended_use", "users", "out_of_scope")


@dataclass(frozen=True, slots=True)
class CardSection:
    """One section of a card: a title, paragraphs, bullet points and tables of text cells."""

    title: str
    text: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()


@dataclass(frozen=True)
class ModelCard:
    """The card of one registered version (see :func:`model_card`).

    Examples
    --------
    >>> card = ModelCard("churn", 3, (CardSection("Intended use", text=("Churn risk.",)),))
    >>> print(card.to_markdown())
    # Model card: churn version 3
    <BLANKLINE>
    ## Intended use
    <BLANKLINE>
    Churn risk.
    <BLANKLINE>
    """

    name: str
    version: int
    sections: tuple[CardSection, ...]
    facts: Mapping[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        """The card's heading."""
        return f"Model card: {self.name} version {self.version}"

    def to_markdown(self) -> str:
        """The card as Markdown (GitHub tables)."""
        lines = [f"# {self.title}", ""]
        for s in self.sections:
            lines += [f"## {s.title}", ""]
            for paragraph in s.text:
                lines += [_md_text(paragraph), ""]
            if s.bullets:
                lines += [f"- {_md_text(b, inline=True)}" for b in s.bullets] + [""]
            for headers, rows in s.tables:
                lines.append("| " + " | ".join(_md(h) for h in headers) + " |")
                lines.append("|" + "---|" * len(headers))
                lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
                lines.append("")
        return "\n".join(lines)

    def to_html(self) -> str:
        """The card as one self-contained HTML page."""
        from watchkeeper._extras import render

        return str(render("model_card", self))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "facts": dict(self.facts),
            "sections": [
                {
                    "title": s.title,
                    "text": list(s.text),
                    "bullets": list(s.bullets),
                    "tables": [
                        {"headers": list(h), "rows": [list(r) for r in rows]}
                        for h, rows in s.tables
                    ],
                }
                for s in self.sections
            ],
        }

    def save(self, *, markdown: str | Path | None = None, html: str | Path | None = None) -> None:
        """Write the Markdown and/or HTML forms."""
        if markdown is not None:
            Path(markdown).write_text(self.to_markdown(), encoding="utf-8")
        if html is not None:
            Path(html).write_text(self.to_html(), encoding="utf-8")


def model_card(
    registry: Any, name: str, ref: int | str = "latest", *, gate_report: Any = None
) -> ModelCard:
    """Build the card of version ``ref`` of model ``name``.

    Parameters
    ----------
    registry
        A :class:`watchkeeper.registry.Registry`.
    name, ref
        Model name and version (number, alias or ``"latest"``).
    gate_report
        The version's :class:`GateReport`, its ``to_dict()`` form, or the path of its JSON
        file. Default: the file named by the version's ``gate_report`` tag, if it exists.

    Raises
    ------
    InputError
        A gate report that cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from sklearn.dummy import DummyClassifier
    >>> from watchkeeper.registry import Registry
    >>> df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 1, 0, 1]})
    >>> with tempfile.TemporaryDirectory() as tmp, Registry(root=tmp) as reg:
    ...     _ = reg.register("spam", DummyClassifier().fit(df[["x"]], df["y"]), reference=df,
    ...                      description="Flags spam for review.", actor="ana")
    ...     card = model_card(reg, "spam")
    >>> [s.title for s in card.sections]
    ['Model details', 'Intended use', 'Data', 'Metrics', 'Fairness', 'Known limits', 'Lineage']
    """
    version = registry.get_version(name, ref)
    report, report_source = _gate_report(gate_report, version.tags.get("gate_report"))
    profile = registry.load_profile(name, version.version)
    results = [] if report is None else list(report.get("results", []))
    fairness = [r for r in results if str(r.get("check", "")).startswith("fairness.")]
    sections = [
        _details(version),
        _intended_use(version),
        _data(version, profile),
        _metrics(version, results),
        _fairness(fairness, profile),
        _limits(version, report, fairness),
        _lineage(registry, version, report, report_source),
    ]
    facts = {
        "gate_passed": None if report is None else report.get("passed"),
        "gate_report": report_source,
    }
    return ModelCard(version.name, version.version, tuple(sections), facts)


# -- sections ----------------------------------------------------------------------------------


def _details(v: Any) -> CardSection:
    rows = (
        ("name", v.name),
        ("version", str(v.version)),
        ("registered", v.created_at.isoformat(timespec="seconds")),
        ("registered by", v.actor),
        ("format", v.format),
        ("output", v.output_kind),
        ("aliases", ", ".join(v.aliases) or "none"),
        ("artifact sha256", v.artifact_sha256),
        ("code version", v.code_version or "unknown"),
    )
    return CardSection("Model details", tables=((("field", "value"), rows),))


def _intended_use(v: Any) -> CardSection:
    text = [v.description] if v.description else [
        "No description was registered; register the version with --description."
    ]  # fmt: skip
    bullets = [f"{k.replace('_', ' ')}: {v.tags[k]}" for k in _USE_TAGS if k in v.tags]
    other = {k: t for k, t in v.tags.items() if k not in (*_USE_TAGS, "limitations")}
    if other:
        bullets.append("tags: " + ", ".join(f"{k}={t}" for k, t in sorted(other.items())))
    return CardSection("Intended use", text=tuple(text), bullets=tuple(bullets))


def _data(v: Any, profile: Any) -> CardSection:
    text = []
    if v.data_fingerprint:
        text.append(f"Training data fingerprint: {v.data_fingerprint}.")
    if profile is None:
        text.append("No reference profile was stored with this version.")
        return CardSection("Data", text=tuple(text))
    text.insert(0, f"Reference profile: {profile.n_rows:,} rows, {len(profile.columns)} columns.")
    rows = []
    for spec in profile.schema:
        col = profile.columns.get(spec.name)
        n = getattr(col, "n", None) or profile.n_rows
        missing = getattr(col, "n_missing", 0) / n if n else 0.0
        rows.append((spec.name, spec.kind.value, spec.role.value, f"{missing:.1%}"))
    tables: list[Table] = [(("column", "kind", "role", "missing"), tuple(rows))]
    counts = profile.group_counts
    if counts is not None:
        group_rows = []
        for attribute in counts.attributes:
            rolled = counts.rollup([attribute])
            sizes = rolled.counts.sum(axis=1)
            total = float(sizes.sum()) or 1.0
            for (group,), size in zip(rolled.keys, sizes, strict=True):
                group_rows.append((attribute, group, f"{round(float(size)):,}",
                                   f"{float(size) / total:.1%}"))  # fmt: skip
        tables.append((("sensitive attribute", "group", "rows", "share"), tuple(group_rows)))
    return CardSection("Data", text=tuple(text), tables=tuple(tables))


def _metrics(v: Any, results: Sequence[Mapping[str, Any]]) -> CardSection:
    tables: list[Table] = []
    if v.metrics:
        rows = tuple((k, _num(val)) for k, val in sorted(v.metrics.items()))
        tables.append((("registered metric", "value"), rows))
    holdout = [r for r in results if r.get("check") == "gate.holdout"]
    if holdout:
        rows = tuple((str(r["subject"]), _num(r.get("value"))) for r in holdout)
        tables.append((("holdout metric (gate)", "value"), rows))
    by_group = _by_group_table([r for r in results if _is_group_result(r)])
    if by_group is not None:
        tables.append(by_group)
    text = () if tables else ("No metrics were registered and no gate report was found.",)
    return CardSection("Metrics", text=text, tables=tuple(tables))


def _fairness(results: Sequence[Mapping[str, Any]], profile: Any) -> CardSection:
    gaps = [r for r in results if not _is_group_result(r) and r.get("check") != "fairness.roc_auc"]
    source = "the gate report"
    if not results and profile is not None and profile.group_counts is not None:
        from watchkeeper.checks import check_fairness_counts

        computed = [r.to_dict() for r in check_fairness_counts(profile.group_counts)]
        gaps = [r for r in computed if not _is_group_result(r)]
        source = "the per-group counts of the reference profile"
    if not gaps:
        return CardSection("Fairness", text=(
            "No fairness results: run the gate with [extra_checks.fairness] and name its JSON "
            "report in the version's gate_report tag, or declare sensitive attributes, target "
            "and prediction in the reference profile's schema.",
        ))  # fmt: skip
    rows = tuple(
        (
            str(r["check"]).removeprefix("fairness."),
            str(r["subject"]),
            str(r["status"]),
            _num(r.get("value")),
            _interval(r),
            str(r.get("reason", "")),
        )
        for r in gaps
    )
    headers = ("result", "subject", "status", "value", "interval", "reason")
    return CardSection("Fairness", text=(f"From {source}.",), tables=((headers, rows),))


def _limits(
    v: Any, report: Mapping[str, Any] | None, fairness: Sequence[Mapping[str, Any]]
) -> CardSection:
    bullets = []
    if "limitations" in v.tags:
        bullets.append(v.tags["limitations"])
    if report is None:
        bullets.append("No gate report: the version's generalisation and fairness are unverified.")
    else:
        bullets += [f"Gate failure: {f}" for f in report.get("failures", [])]
    small = sorted({str(r["subject"]) for r in fairness if r.get("status") == "insufficient_data"})
    small = [g for g in small if "=" in g]
    if small:
        bullets.append("Groups too small to judge: " + ", ".join(small))
    flagged = [r for r in fairness if r.get("status") in ("warn", "alert") and
               "=" not in str(r["subject"])]  # fmt: skip
    bullets += [f"{r['status']}: {r.get('reason', '')}" for r in flagged]
    if "out_of_scope" in v.tags:
        bullets.append(f"Out of scope: {v.tags['out_of_scope']}")
    return CardSection("Known limits", bullets=tuple(bullets or ["None recorded."]))


def _lineage(
    registry: Any, v: Any, report: Mapping[str, Any] | None, source: str | None
) -> CardSection:
    parent = v.tags.get("parent_version")
    if parent is None:
        earlier = [x.version for x in registry.list_versions(v.name) if x.version < v.version]
        parent = str(earlier[-1]) if earlier else None
    text = [f"Parent version: {parent or 'none'}."]
    if source is not None:
        verdict = "" if report is None else (" (passed)" if report.get("passed") else " (failed)")
        text.append(f"Gate report: {source}{verdict}.")
    rows = []
    for e in registry.history(v.name):
        what = {
            "register": f"registered version {e.version}",
            "delete": f"deleted version {e.version}",
            "unalias": f"removed alias {e.alias}",
        }.get(e.kind, f"{e.kind} {e.alias}: {e.from_version or '-'} -> {e.to_version}")
        rows.append((e.at.isoformat(timespec="seconds"), e.actor, what, e.reason or ""))
    tables: tuple[Table, ...] = ((("when (UTC)", "who", "what", "why"), tuple(rows)),)
    return CardSection("Lineage", text=tuple(text), tables=tables)


# -- helpers -----------------------------------------------------------------------------------


def _gate_report(given: Any, tag: str | None) -> tuple[dict[str, Any] | None, str | None]:
    if given is None and tag:
        path = Path(tag)
        return (_read_report(path), str(path)) if path.is_file() else (None, tag)
    if given is None:
        return None, None
    if isinstance(given, str | Path):
        return _read_report(Path(given)), str(given)
    if isinstance(given, Mapping):
        return dict(given), None
    to_dict = getattr(given, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict()), None
    raise InputError(f"gate_report must be a GateReport, a dict or a path, not {type(given)}")


def _read_report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the gate report {str(path)!r}: {exc}") from exc
    if not isinstance(data, dict) or "results" not in data:
        raise InputError(f"{str(path)!r} is not a watchkeeper gate report (no results)")
    return data


def _is_group_result(r: Mapping[str, Any]) -> bool:
    check = str(r.get("check", ""))
    return check.startswith("fairness.") and "=" in str(r.get("subject", ""))


def _by_group_table(results: Sequence[Mapping[str, Any]]) -> Table | None:
    metrics = list(dict.fromkeys(str(r["check"]) for r in results))
    if not metrics:
        return None
    cells: dict[str, dict[str, str]] = {}
    for r in results:
        value = _num(r.get("value")) if r.get("status") != "insufficient_data" else "too few"
        cells.setdefault(str(r["subject"]), {})[str(r["check"])] = value
    headers = ("group", *(m.removeprefix("fairness.").replace("_", " ") for m in metrics))
    rows = tuple((g, *(by.get(m, "") for m in metrics)) for g, by in cells.items())
    return headers, rows


def _num(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def _interval(r: Mapping[str, Any]) -> str:
    lo, hi = r.get("lower"), r.get("upper")
    return "—" if lo is None or hi is None else f"{_num(lo)} to {_num(hi)}"


def _md_text(text: str, *, inline: bool = False) -> str:
    """Text from descriptions, tags, metric names... as inert Markdown: HTML is escaped as
    the HTML card escapes it (Markdown renders ``&lt;`` as ``<``, never as a tag), brackets
    cannot open a link or image, and a line cannot start a heading, list or HTML block.

    Examples
    --------
    >>> print(_md_text('<img src=x onerror="alert(1)"> [x](javascript:alert(1))'))
    &lt;img src=x onerror="alert(1)"&gt; \\[x\\](javascript:alert(1))
    """
    escaped = html.escape(str(text), quote=False).replace("[", "\\[").replace("]", "\\]")
    lines = [line.strip() for line in escaped.splitlines()] or [""]
    if inline:
        return " ".join(lines)
    # Paragraph lines keep their breaks but start with no Markdown block marker.
    return "\n".join(re.sub(r"^([#>*+=`~-]|\d+[.)])", r"\\\1", line) for line in lines)


def _md(cell: str) -> str:
    return _md_text(str(cell), inline=True).replace("|", "\\|")
