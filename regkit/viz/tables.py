"""Result tables: our numbers beside the papers', as HTML that fits the book's column and as plain text.

:func:`result_table` turns results from several *sources* (the paper, a full run, a CPU
profile, the live quick run, ...) into a :class:`ResultTable`. Displayed in a notebook it is
an HTML table (``text/html``) with one column group per source (or per metric), ``mean ± std``
cells with the deviation on a second, smaller line, and headers that wrap, so that about four
metrics from four sources fit the 772 px text column without sideways scrolling. Its ``text/plain``
form is a deterministic fixed-width table that nbval can compare.

Convention
----------
* ``data`` is ``{source: {row: {metric: value}}}`` or a list of row dicts
  ``{"source": ..., "row": ..., metric: value, ...}``; sources, rows and metrics keep the
  order in which they first appear unless given explicitly.
* A value is a number (a mean), a pair ``(mean, std)``, a mapping with ``"mean"`` and
  optionally ``"std"`` and ``"failed"`` (how many items failed and were left out of the
  mean), a string shown as is, or ``None`` / NaN for "not reported" (shown as ``missing``).
* Numbers are formatted per metric with a format spec (``".3f"`` by default) or a callable;
  the same text appears in both forms.
* A (source, metric) column with no value at all is left out (``drop_empty=True``), so a
  paper that does not report a metric costs no space.
"""

from __future__ import annotations

import html
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

__all__ = ["ResultTable", "result_table"]

Format = str | Callable[[float], str]

# Scoped to the table's wrapper; more specific than the notebook theme's table rules.
_STYLE = (
    "div.regkit-table{overflow-x:auto;margin:0.4em 0 1em 0;max-width:100%}"
    "div.regkit-table table.rk{border-collapse:collapse;font-size:0.8rem;width:auto;margin:0;"
    "color:inherit;background:transparent;font-variant-numeric:tabular-nums;line-height:1.25}"
    "div.regkit-table table.rk caption{caption-side:top;text-align:left;font-size:0.95rem;"
    "padding:0 0 0.3em 0;color:inherit}"
    "div.regkit-table table.rk th,div.regkit-table table.rk td{padding:0.2em 0.2em;border:none;"
    "background:transparent;vertical-align:top}"
    "div.regkit-table table.rk thead th{text-align:center;white-space:normal;font-weight:600;"
    "vertical-align:bottom}"
    "div.regkit-table table.rk thead tr:last-child th{border-bottom:1px solid currentColor}"
    "div.regkit-table table.rk tbody th{text-align:left;font-weight:normal;white-space:normal;"
    "max-width:11em;padding-right:0.5em}"
    "div.regkit-table table.rk .rk-w{white-space:nowrap}"
    "div.regkit-table table.rk td{text-align:right;white-space:nowrap}"
    "div.regkit-table table.rk .rk-g{border-left:1px solid rgba(128,128,128,0.5)}"
    "div.regkit-table table.rk .rk-sd,div.regkit-table table.rk .rk-fail{display:block;"
    "font-size:0.75em;opacity:0.75}"
    "div.regkit-table table.rk tr.rk-rowgroup th{font-style:italic;padding-top:0.5em}"
    "div.regkit-table table.rk tbody tr:last-child th,div.regkit-table table.rk tbody tr:last-child td"
    "{border-bottom:1px solid currentColor}"
    "div.regkit-table p.rk-notes{font-size:0.8rem;margin:0.3em 0 0 0}"
)

# A text cell of several words; inline, so that tables without one keep their markup.
_TEXT_CELL = "text-align:left;white-space:normal;min-width:6em;max-width:16em"


@dataclass(frozen=True)
class _Cell:
    mean: float | None = None
    std: float | None = None
    failed: int = 0
    text: str | None = None


def _number(x: Any) -> float | None:
    """A real number as float (NaN -> None), or raise TypeError."""
    if isinstance(x, bool):
        raise TypeError("bool")
    if not isinstance(x, numbers.Real):
        item = getattr(x, "item", None)  # numpy / torch scalars
        if item is None:
            raise TypeError(type(x).__name__)
        x = item()
        if isinstance(x, bool) or not isinstance(x, numbers.Real):
            raise TypeError(type(x).__name__)
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        raise ValueError("inf")
    return x


def _cell(value: Any, where: str) -> _Cell | None:
    """Parse one value; ``None`` for a missing one."""
    if value is None:
        return None
    if isinstance(value, str):
        return _Cell(text=value)
    try:
        if isinstance(value, Mapping):
            unknown = set(value) - {"mean", "std", "failed"}
            if unknown or "mean" not in value:
                raise ValueError(
                    f"{where} must have a 'mean' and optionally 'std' and 'failed', got keys {sorted(map(str, value))}"
                )
            failed = value.get("failed", 0) or 0
            if not isinstance(failed, numbers.Integral) or isinstance(failed, bool) or failed < 0:
                raise ValueError(f"{where}['failed'] must be a non-negative int, got {failed!r}")
            mean = _number(value["mean"])
            std = _number(value["std"]) if value.get("std") is not None else None
        elif isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(f"{where} must be a number, (mean, std), a mapping or a str; got {len(value)} items")
            mean = _number(value[0])
            std = _number(value[1]) if value[1] is not None else None
            failed = 0
        else:
            mean, std, failed = _number(value), None, 0
    except TypeError as err:
        raise TypeError(f"{where} must hold real numbers, got {err}") from None
    except ValueError as err:
        if str(err) == "inf":
            raise ValueError(f"{where} must be finite or NaN (missing), got inf") from None
        raise
    if mean is None and not failed:
        return None
    return _Cell(mean=mean, std=std, failed=int(failed))


def _ordered(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _format(spec: Format, x: float) -> str:
    return spec(x) if callable(spec) else format(x, spec)


class ResultTable:
    """A table of results from several sources: HTML for the book, fixed-width text for nbval.

    Built by :func:`result_table`; see there for the parameters. Displaying it in a notebook
    shows :meth:`to_html`; ``repr``, ``str`` and IPython's pretty printer give :meth:`to_text`.

    Attributes
    ----------
    sources, metrics : list of str
        Column groups and metrics, in display order (before empty columns are dropped).
    rows : list of (str or None, str)
        ``(row group, row label)`` in display order.
    columns : list of (str, str)
        The ``(source, metric)`` columns shown, in display order.
    """

    def __init__(
        self,
        cells: Mapping[tuple[str, str, str], _Cell],
        sources: Sequence[str],
        rows: Sequence[tuple[str | None, str]],
        metrics: Sequence[str],
        *,
        formats: Mapping[str, Format],
        labels: Mapping[str, str],
        group: str,
        row_title: str,
        caption: str | None,
        notes: Sequence[str],
        missing: str,
        drop_empty: bool,
    ) -> None:
        self._cells = dict(cells)
        self.sources = list(sources)
        self.rows = list(rows)
        self.metrics = list(metrics)
        self.formats = dict(formats)
        self.labels = dict(labels)
        self.group = group
        self.row_title = row_title
        self.caption = caption
        self.notes = list(notes)
        self.missing = missing
        pairs = (
            [(s, m) for s in self.sources for m in self.metrics]
            if group == "source"
            else [(s, m) for m in self.metrics for s in self.sources]
        )
        if drop_empty:
            pairs = [(s, m) for s, m in pairs if any((s, r, m) in self._cells for _, r in self.rows)]
        self.columns = pairs

    # ------------------------------------------------------------------ pieces

    def _groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Header groups: ``(group label, [(source, metric), ...])`` in column order."""
        out: list[tuple[str, list[tuple[str, str]]]] = []
        for s, m in self.columns:
            key = s if self.group == "source" else m
            if out and out[-1][0] == key:
                out[-1][1].append((s, m))
            else:
                out.append((key, [(s, m)]))
        return out

    def _head(self, key: str) -> str:
        """Header text of a group key or a sub-column key (metric labels apply to metrics)."""
        return self.labels.get(key, key)

    def _sub(self, s: str, m: str) -> str:
        return self._head(m) if self.group == "source" else s

    def _top(self, key: str) -> str:
        return key if self.group == "source" else self._head(key)

    def _parts(self, s: str, r: str, m: str) -> tuple[str, str | None, str | None]:
        """``(main text, '± std' text or None, 'k failed' text or None)`` of one cell."""
        c = self._cells.get((s, r, m))
        if c is None:
            return self.missing, None, None
        if c.text is not None:
            return c.text, None, None
        spec = self.formats.get(m, ".3f")
        main = _format(spec, c.mean) if c.mean is not None else self.missing
        sd = f"± {_format(spec, c.std)}" if c.std is not None else None
        fail = f"{c.failed} failed" if c.failed else None
        return main, sd, fail

    def _is_text(self, s: str, r: str, m: str) -> bool:
        """Whether a cell holds text of several words (shown left-aligned and wrapped in HTML)."""
        c = self._cells.get((s, r, m))
        return c is not None and c.text is not None and " " in c.text.strip()

    # ------------------------------------------------------------------ HTML

    def to_html(self) -> str:
        """The table as a self-contained HTML snippet (a ``<div class="regkit-table">``).

        Returns
        -------
        str
            Well-formed markup: a scoped ``<style>``, the ``<table>`` with ``<caption>``,
            two header rows and one row per result, and the notes.
        """
        esc = html.escape
        groups = self._groups()
        firsts = {cols[0] for _, cols in groups}
        out = ['<div class="regkit-table">', f"<style>{_STYLE}</style>", '<table class="rk">']
        if self.caption:
            out.append(f"<caption>{esc(self.caption)}</caption>")
        out.append("<thead><tr>")
        out.append(f'<th rowspan="2" scope="col">{esc(self.row_title)}</th>')
        for key, cols in groups:
            out.append(f'<th colspan="{len(cols)}" scope="colgroup" class="rk-g">{esc(self._top(key))}</th>')
        out.append("</tr><tr>")
        for s, m in self.columns:
            cls = ' class="rk-g"' if (s, m) in firsts else ""
            out.append(f'<th scope="col"{cls}>{esc(self._sub(s, m))}</th>')
        out.append("</tr></thead><tbody>")
        current: str | None = None
        for grp, r in self.rows:
            if grp is not None and grp != current:
                out.append(f'<tr class="rk-rowgroup"><th colspan="{len(self.columns) + 1}">{esc(grp)}</th></tr>')
            current = grp
            # Rows break between words only, never at a hyphen ("VoxelMorph-2").
            words = " ".join(f'<span class="rk-w">{esc(w)}</span>' for w in r.split(" "))
            out.append(f'<tr><th scope="row">{words}</th>')
            for s, m in self.columns:
                main, sd, fail = self._parts(s, r, m)
                cls = ' class="rk-g"' if (s, m) in firsts else ""
                if self._is_text(s, r, m):  # a reason, a file list: wraps, where numbers never do
                    cls += f' style="{_TEXT_CELL}"'
                body = esc(main)
                if sd:
                    body += f'<span class="rk-sd">{esc(sd)}</span>'
                if fail:
                    body += f'<span class="rk-fail">{esc(fail)}</span>'
                out.append(f"<td{cls}>{body}</td>")
            out.append("</tr>")
        out.append("</tbody></table>")
        for note in self.notes:
            out.append(f'<p class="rk-notes">{esc(note)}</p>')
        out.append("</div>")
        return "".join(out)

    def _repr_html_(self) -> str:
        return self.to_html()

    # ------------------------------------------------------------------ text

    def to_text(self) -> str:
        """The table as deterministic fixed-width text (``text/plain``).

        Returns
        -------
        str
            A caption line, a header line per level, a rule, one line per row (row groups as
            lines of their own, their rows indented by two spaces) and the notes. Column groups
            are separated by ``" | "``; cells read ``mean ± std`` (and ``(k failed)``).
        """
        groups = self._groups()
        cell = {}
        for _, r in self.rows:
            for s, m in self.columns:
                main, sd, fail = self._parts(s, r, m)
                cell[(s, r, m)] = " ".join(t for t in (main, sd, f"({fail})" if fail else None) if t)
        width = {c: max([len(self._sub(*c))] + [len(cell[(c[0], r, c[1])]) for _, r in self.rows]) for c in self.columns}
        for key, cols in groups:  # a long group label widens the group's last column
            span = sum(width[c] for c in cols) + 2 * (len(cols) - 1)
            if len(self._top(key)) > span:
                width[cols[-1]] += len(self._top(key)) - span
        indent = "  " if any(g is not None for g, _ in self.rows) else ""
        left = max([len(self.row_title)] + [len(indent + r) for _, r in self.rows] +
                   [len(g) for g, _ in self.rows if g is not None])

        def line(first: str, parts: list[str]) -> str:
            return (first.ljust(left) + "  " + " | ".join(parts)).rstrip()

        top = [self._top(key).ljust(sum(width[c] for c in cols) + 2 * (len(cols) - 1)) for key, cols in groups]
        sub = ["  ".join(self._sub(*c).rjust(width[c]) for c in cols) for _, cols in groups]
        lines = [self.caption] if self.caption else []
        lines += [line("", top), line(self.row_title, sub)]
        lines.append("-" * len(line(self.row_title, sub)))
        current: str | None = None
        for grp, r in self.rows:
            if grp is not None and grp != current:
                lines.append(grp)
            current = grp
            parts = ["  ".join(cell[(c[0], r, c[1])].rjust(width[c]) for c in cols) for _, cols in groups]
            lines.append(line(indent + r, parts))
        lines += self.notes
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.to_text()

    __str__ = __repr__

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.to_text())


def _rows_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    data: dict[str, dict[str, dict[str, Any]]] = {}
    for k, rec in enumerate(records):
        if not isinstance(rec, Mapping) or "source" not in rec or "row" not in rec:
            raise ValueError(f"data[{k}] must be a mapping with 'source' and 'row' keys")
        row = data.setdefault(str(rec["source"]), {}).setdefault(str(rec["row"]), {})
        for m, v in rec.items():
            if m not in ("source", "row"):
                if m in row:
                    raise ValueError(f"data[{k}] repeats metric {m!r} of row {rec['row']!r} in source {rec['source']!r}")
                row[str(m)] = v
    return data


def result_table(
    data: Mapping[str, Mapping[str, Mapping[str, Any]]] | Sequence[Mapping[str, Any]],
    metrics: Sequence[str] | Mapping[str, Format] | None = None,
    *,
    formats: Mapping[str, Format] | str | None = None,
    labels: Mapping[str, str] | None = None,
    rows: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    sources: Sequence[str] | None = None,
    group: str = "source",
    row_title: str = "",
    caption: str | None = None,
    notes: Sequence[str] | str = (),
    missing: str = "–",
    drop_empty: bool = True,
) -> ResultTable:
    """Build a :class:`ResultTable` of results from several sources.

    Parameters
    ----------
    data : mapping or sequence of mappings
        ``{source: {row: {metric: value}}}``, or row dicts ``{"source": s, "row": r,
        metric: value, ...}``. Values as in the module's Convention.
    metrics : sequence of str or mapping of str to format, optional
        Metrics in display order, or ``{metric: format}``. Default: every metric in ``data``
        in order of appearance.
    formats : mapping of str to format, or str, optional
        Format spec (``".3f"``) or callable per metric, or one spec for all; default ``".3f"``.
    labels : mapping of str to str, optional
        Header text of a metric (e.g. ``{"psnr": "PSNR (dB)"}``); default the metric name.
    rows : sequence of str or mapping of str to sequence of str, optional
        Rows in display order, or ``{row group: [rows]}`` to print group headings
        (e.g. traditional and deep-learning methods). Default: every row in ``data``.
    sources : sequence of str, optional
        Sources in display order; default the order of ``data``.
    group : {"source", "metric"}
        What the top header groups: sources (each with its metrics beneath) or metrics
        (each with its sources beneath, so the paper's value sits beside ours).
    row_title : str
        Heading of the row-label column (e.g. ``"method"``).
    caption : str, optional
        Shown above the table.
    notes : str or sequence of str
        Lines shown below the table (e.g. what a profile means, how many pairs failed).
    missing : str
        Text of a missing value.
    drop_empty : bool
        Leave out (source, metric) columns without any value.

    Returns
    -------
    ResultTable

    Convention
    ----------
    The text form is fixed-width and depends only on the inputs, so a seeded quick run can
    be checked with ``# NBVAL_CHECK_OUTPUT``.

    Examples
    --------
    >>> t = result_table(
    ...     {"paper": {"SyN": {"NCC": 0.549}},
    ...      "quick run": {"SyN": {"NCC": (0.61234, 0.04), "SSIM": {"mean": 0.5, "failed": 1}}}},
    ...     formats={"NCC": ".3f", "SSIM": ".2f"}, row_title="method")
    >>> print(t)
            paper | quick run
    method    NCC |           NCC             SSIM
    ----------------------------------------------
    SyN     0.549 | 0.612 ± 0.040  0.50 (1 failed)
    """
    if isinstance(data, Mapping):
        nested = {str(s): rows_ for s, rows_ in data.items()}
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        nested = _rows_from_records(data)
    else:
        raise TypeError(f"data must be a mapping source -> row -> metric -> value or a list of row dicts, "
                        f"got {type(data).__name__}")
    for s, rows_ in nested.items():
        if not isinstance(rows_, Mapping):
            raise TypeError(f"data[{s!r}] must be a mapping row -> metric -> value, got {type(rows_).__name__}")
        for r, vals in rows_.items():
            if not isinstance(vals, Mapping):
                raise TypeError(f"data[{s!r}][{r!r}] must be a mapping metric -> value, got {type(vals).__name__}")
    if group not in ("source", "metric"):
        raise ValueError(f"group must be 'source' or 'metric', got {group!r}")

    fmt: dict[str, Format] = {}
    if isinstance(metrics, Mapping):
        fmt.update(metrics)
        metric_list = [str(m) for m in metrics]
    elif metrics is None:
        metric_list = _ordered(str(m) for rows_ in nested.values() for vals in rows_.values() for m in vals)
    elif isinstance(metrics, (str, bytes)):
        raise TypeError("metrics must be a sequence of metric names, not a string")
    else:
        metric_list = [str(m) for m in metrics]
    if isinstance(formats, str):
        fmt.update({m: formats for m in metric_list})
    elif formats is not None:
        fmt.update(formats)
    for m, spec in fmt.items():
        if not callable(spec):
            try:
                format(0.5, spec)
            except (TypeError, ValueError):
                raise ValueError(f"formats[{m!r}] must be a number format spec such as '.3f', got {spec!r}") from None

    source_list = [str(s) for s in sources] if sources is not None else list(nested)
    unknown = [s for s in source_list if s not in nested]
    if unknown:
        raise ValueError(f"sources {unknown} are not in data (which has {list(nested)})")
    if rows is None:
        row_list: list[tuple[str | None, str]] = [
            (None, r) for r in _ordered(str(r) for s in source_list for r in nested[s])
        ]
    elif isinstance(rows, Mapping):
        row_list = [(str(g), str(r)) for g, rs in rows.items() for r in rs]
    elif isinstance(rows, (str, bytes)):
        raise TypeError("rows must be a sequence of row labels or a mapping group -> rows, not a string")
    else:
        row_list = [(None, str(r)) for r in rows]

    cells: dict[tuple[str, str, str], _Cell] = {}
    for s in source_list:
        for r, vals in nested[s].items():
            for m, v in vals.items():
                if str(m) in metric_list:
                    c = _cell(v, f"data[{s!r}][{r!r}][{m!r}]")
                    if c is not None:
                        cells[(s, str(r), str(m))] = c
    return ResultTable(
        cells,
        source_list,
        row_list,
        metric_list,
        formats=fmt,
        labels={str(k): str(v) for k, v in (labels or {}).items()},
        group=group,
        row_title=str(row_title),
        caption=caption,
        notes=[notes] if isinstance(notes, str) else [str(n) for n in notes],
        missing=str(missing),
        drop_empty=bool(drop_empty),
    )
