"""Output formats of tables: records in ``FORMATS``, and the renderers they use.

A ``TableFormat`` turns display tables (text cells) and their legend lines into one text;
a format without ``table`` (csv) is machine-readable and gets every number instead
(``ganbench.results.tables.render``). A plug-in adds one with ``register(TableFormat(...))``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Callable, Optional

import pandas as pd

from ganbench.registry import Registry


@dataclass(frozen=True, kw_only=True)
class TableFormat:
    name: str
    description: str
    table: Optional[Callable[[pd.DataFrame], str]] = None  # one display table -> text; None: every number as csv
    notes: Callable[[list[str]], str] = "\n".join  # the legend and notes -> text
    between_tables: str = "\n\n"
    before_notes: str = "\n\n"

    def join(self, tables: list[pd.DataFrame], lines: list[str]) -> str:
        """The tables, then the legend and notes."""
        return self.between_tables.join(self.table(t) for t in tables) + self.before_notes + self.notes(lines)


FORMATS = Registry("table format", TableFormat)


def register(fmt: TableFormat) -> TableFormat:
    """Add ``fmt`` to ``FORMATS`` under its name."""
    return FORMATS.register(fmt.name, fmt)


def md_escape(text: str, quote: bool = True) -> str:
    """Text for Markdown that a renderer turns into HTML: HTML and Markdown's markup characters neutralised."""
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", html.escape(text, quote=quote))


def to_markdown(table: pd.DataFrame, escape_html: bool = False) -> str:
    """A pipe table; ``|`` in cells is escaped. With ``escape_html`` (Markdown that a renderer turns
    into HTML) also <, >, & and quotes, Markdown's markup characters and line breaks."""
    def esc(v) -> str:
        text = " ".join(str(v).splitlines())
        if escape_html:
            return md_escape(text)
        return text.replace("|", "\\|")
    cols = [esc(c) for c in table.columns]
    cells = [[esc(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cols), rule] + [line(r) for r in cells])


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "—": "--",
          "−": "$-$", "·": r"$\cdot$"}


def latex_escape(text) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in str(text))


def to_latex(table: pd.DataFrame) -> str:
    """A booktabs tabular (needs ``\\usepackage{booktabs}``); every cell is escaped for LaTeX."""
    spec = "ll" + "r" * (len(table.columns) - 2)
    head = " & ".join(latex_escape(c) for c in table.columns) + r" \\"
    body = [" & ".join(latex_escape(v) for v in row) + r" \\" for row in table.itertuples(index=False)]
    return "\n".join([rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head, r"\midrule", *body,
                      r"\bottomrule", r"\end{tabular}"])


def to_html(table: pd.DataFrame) -> str:
    """An HTML ``<table>`` fragment; every header and cell is escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    cell = lambda v: html.escape(str(v)).replace(" ± ", "\u00a0±\u00a0")  # noqa: E731  (keep mean ± std on one line)
    rows = ["<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
            for row in table.itertuples(index=False)]
    body = "\n".join(rows)
    return f'<table class="ganbench">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


register(TableFormat(name="md", table=to_markdown, description="Markdown tables, legend and notes (default)"))
register(TableFormat(name="csv", description="every number: one line per setting x metric (mean, std, ci95, n, rank, tests)"))
register(TableFormat(name="latex", table=to_latex, before_notes="\n",
                     notes=lambda lines: "\n".join(f"% {line}" for line in lines),
                     description="booktabs tabulars, the legend as comments"))
register(TableFormat(name="html", table=to_html, between_tables="\n", before_notes="\n",
                     notes=lambda lines: "\n".join(f"<p>{html.escape(line)}</p>" for line in lines),
                     description="HTML tables (every cell escaped), the legend as paragraphs"))
