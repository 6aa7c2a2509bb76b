"""The road-to-zero chart: open findings per run as inline SVG (no JS, no network)."""

from __future__ import annotations

from collections.abc import Callable

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 44, 20, 44  # RIGHT leaves room for the last date label


def trend_svg(history: list[dict]) -> Markup:
    """Line of `open` per `run_date`, with the target line at zero."""
    if not history:
        return Markup('<p class="small">暂无历史运行记录。</p>')
    values = [h["open"] for h in history]
    n = len(history)
    parts, x, y = _canvas(n, max(values), HEIGHT, "待处理问题数趋势")
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{y(0) - 6:.1f}" text-anchor="end" fill="#1e8449">目标：清零（0）</text>')
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    parts.append(f'<polyline points="{points}" fill="none" stroke="#c0392b" stroke-width="2.5"/>')
    label_every = max(1, n // 8)
    for i, h in enumerate(history):
        date = escape(h["run_date"])
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(values[i]):.1f}" r="3.5" fill="#c0392b">'
                     f'<title>{date}：待处理 {values[i]} 条</title></circle>')
        if i % label_every == 0 or i == n - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                         f'fill="#566573">{date}</text>')
    parts.append(f'<text x="{x(n - 1):.1f}" y="{y(values[-1]) - 8:.1f}" text-anchor="middle" '
                 f'font-weight="bold">{values[-1]}</text></svg>')
    return Markup("".join(parts))


def _canvas(n: int, highest: int, height: int, title: str) -> tuple[list[str], Callable, Callable]:
    """The opening of a chart of `n` points up to `highest`: the svg element, the value grid and the
    dashed target line at zero; and the x (point index) and y (value) scales."""
    top = max(highest, 1)
    step = _nice_step(top)
    top = step * -(-top // step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return TOP + plot_h * (1 - v / top)

    # the viewBox lets the chart shrink with its column (beside another chart) instead of being cut off
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
             f'role="img" aria-label="{escape(title)}" style="max-width:100%;height:auto;font-size:11px">']
    for v in range(0, int(top) + 1, int(step)):
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eaeded"/>'
                     f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#566573">{v}</text>')
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#1e8449" '
                 'stroke-width="2" stroke-dasharray="6 4"/>')
    return parts, x, y


def _nice_step(top: int) -> int:
    raw = max(top / 5, 1)
    magnitude = 10 ** (len(str(int(raw))) - 1)
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


#: Line colours of `lines_svg`, one per series in order (distinguishable in print and for most colour blindness).
PALETTE = ("#2471a3", "#d68910", "#7d3c98", "#148f77", "#a04000", "#566573", "#c0392b", "#1e8449")


def lines_svg(labels: list[str], series: dict[str, list[int]], title: str = "各部门待处理问题数趋势") -> Markup:
    """Several lines over the same x labels (one per department), a legend, and the target line at zero.

    Args:
        labels: the x axis (run dates or months), oldest first.
        series: legend label → one value per x label.
    """
    if not labels or not series:
        return Markup('<p class="small">暂无历史运行记录。</p>')
    legend_h = 18 * ((len(series) + 3) // 4)
    n = len(labels)
    parts, x, y = _canvas(n, max((max(v) for v in series.values() if v), default=0), HEIGHT + legend_h, title)
    plot_w = WIDTH - LEFT - RIGHT
    label_every = max(1, n // 8)
    for i, label in enumerate(labels):
        if i % label_every == 0 or i == n - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                         f'fill="#566573">{escape(label)}</text>')
    for k, (name, values) in enumerate(series.items()):
        colour = PALETTE[k % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for i, v in enumerate(values):
            parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(name)} {escape(labels[i])}：待处理 {v} 条</title></circle>')
        lx, ly = LEFT + (k % 4) * (plot_w / 4), HEIGHT + 4 + 18 * (k // 4)
        parts.append(f'<rect x="{lx:.1f}" y="{ly:.1f}" width="14" height="4" fill="{colour}"/>'
                     f'<text x="{lx + 18:.1f}" y="{ly + 6:.1f}" fill="#1c2833">{escape(name)}（{values[-1]}）</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
