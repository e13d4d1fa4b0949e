"""Small SVG bar charts, drawn on the server (no script, so the CSP holds)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT, TOP, BOTTOM = 600, 140, 16, 18


def bars(title: str, stacks: Sequence[tuple[str, str, Sequence[float]]], first: str,
         last: str, unit: str = "") -> Markup:
    """Stacked bars: each stack is (label, CSS class, one value per bucket)."""
    buckets = len(stacks[0][2]) if stacks else 0
    totals = [sum(stack[2][i] for stack in stacks) for i in range(buckets)]
    peak = max(totals, default=0) or 1
    step = WIDTH / max(buckets, 1)
    usable = HEIGHT - TOP - BOTTOM
    shapes = []
    for i in range(buckets):
        base = float(HEIGHT - BOTTOM)
        for label, css, values in stacks:
            value = values[i]
            if not value:
                continue
            height = usable * value / peak
            base -= height
            shapes.append(f'<rect class="{css}" x="{i * step:.2f}" y="{base:.2f}" '
                          f'width="{max(step - 0.6, 0.4):.2f}" height="{height:.2f}">'
                          f"<title>{escape(label)}: {value:g}{unit}</title></rect>")
    legend = " · ".join(f'<tspan class="{css}-text">{escape(label)}</tspan>'
                        for label, css, _ in stacks)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">'
        f'<text x="0" y="11" class="chart-label">{escape(title)} (peak {peak:g}{unit}) '
        f"{legend}</text>"
        f'<line x1="0" x2="{WIDTH}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" '
        f'class="axis"/>{"".join(shapes)}'
        f'<text x="0" y="{HEIGHT - 4}" class="chart-label">{escape(first)}</text>'
        f'<text x="{WIDTH}" y="{HEIGHT - 4}" class="chart-label" text-anchor="end">'
        f"{escape(last)}</text></svg>")
