"""Inline SVG charts for the audit report: no scripts, no external resources.

Every label comes from audit entries, which any authenticated caller can
influence, so all text is HTML-escaped.
"""

from __future__ import annotations

from html import escape

# Series drawn separately at most; the rest are summed into "other".
MAX_SERIES = 8
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")
MAX_LABEL = 40

_WIDTH = 720
_HEIGHT = 260
_LEFT = 48
_BOTTOM = 60
_TOP = 16
_LEGEND_WIDTH = 200


def short_label(text: str) -> str:
    """Return `text` cut to MAX_LABEL characters, marking the cut with an ellipsis."""
    text = text or "(none)"
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def top_series(series: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    """Keep the MAX_SERIES largest series and sum the others into "other"."""
    ranked = sorted(series, key=lambda name: (-sum(series[name].values()), name))
    kept = {name: series[name] for name in ranked[:MAX_SERIES]}
    rest = ranked[MAX_SERIES:]
    if rest:
        other: dict[str, int] = {}
        for name in rest:
            for category, value in series[name].items():
                other[category] = other.get(category, 0) + value
        kept["other"] = other
    return kept


def stacked_bar_svg(chart_id: str, title: str, categories: list[str], series: dict[str, dict[str, int]]) -> str:
    """Return an SVG stacked bar chart: one bar per category, one colour per series."""
    series = top_series(series)
    totals = [sum(values.get(c, 0) for values in series.values()) for c in categories]
    peak = max(totals, default=0) or 1
    plot_width = _WIDTH - _LEFT - _LEGEND_WIDTH
    plot_height = _HEIGHT - _TOP - _BOTTOM
    slot = plot_width / max(len(categories), 1)
    bar_width = max(min(slot * 0.7, 48), 2)

    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" data-chart="{escape(chart_id)}" role="img" '
        f'width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{_LEFT}" y1="{_TOP + plot_height}" x2="{_LEFT + plot_width}" '
        f'y2="{_TOP + plot_height}" stroke="#333"/>',
        f'<text x="{_LEFT - 6}" y="{_TOP + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{_LEFT - 6}" y="{_TOP + plot_height}" text-anchor="end" font-size="11">0</text>',
    ]
    if not categories:
        parts.append(f'<text x="{_LEFT + 10}" y="{_TOP + plot_height / 2}" font-size="13">no data</text>')
    for index, category in enumerate(categories):
        x = _LEFT + index * slot + (slot - bar_width) / 2
        y = _TOP + plot_height
        for colour, (name, values) in zip(_colours(), series.items()):
            value = values.get(category, 0)
            if not value:
                continue
            height = value / peak * plot_height
            y -= height
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_width:.1f}" height="{height:.1f}" '
                f'fill="{colour}" data-series="{escape(name)}" data-category="{escape(category)}" '
                f'data-value="{value}"><title>{escape(short_label(name))}, {escape(category)}: {value}</title></rect>'
            )
        label_y = _TOP + plot_height + 14
        parts.append(
            f'<text x="{x + bar_width / 2:.1f}" y="{label_y}" font-size="10" text-anchor="end" '
            f'transform="rotate(-35 {x + bar_width / 2:.1f} {label_y})">{escape(short_label(category))}</text>'
        )
    for row, (colour, name) in enumerate(zip(_colours(), series)):
        legend_y = _TOP + row * 18
        parts.append(
            f'<rect x="{_WIDTH - _LEGEND_WIDTH + 10}" y="{legend_y}" width="12" height="12" fill="{colour}"/>'
            f'<text x="{_WIDTH - _LEGEND_WIDTH + 28}" y="{legend_y + 10}" font-size="11">'
            f"{escape(short_label(name))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _colours():
    while True:
        yield from PALETTE
