"""Inline SVG charts for the HTML reports (no script, no external resource).

``drift_chart`` draws each matched layer's error as a bar on a log scale with its
floor as a line, the first layer past its floor marked; ``bar_chart`` draws one
value per label (R per route) against a threshold.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

_W, _H, _PAD_L, _PAD_B, _PAD_T = 720, 260, 56, 70, 16
_PASS, _FAIL, _FLOOR = "#2e7d32", "#c62828", "#1565c0"


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _log_scale(values: list[float]) -> tuple[float, float]:
    positive = [v for v in values if v > 0]
    low = math.floor(math.log10(min(positive))) if positive else -8
    high = math.ceil(math.log10(max(positive))) if positive else 0
    return float(low), float(max(high, low + 1))


def drift_chart(layers: list[dict[str, Any]], title: str = "drift per layer") -> str:
    """An SVG bar chart of ``max_abs`` per layer (log scale) with the ``floor`` line.

    Args:
        layers: dicts with ``at``, ``op``, ``max_abs``, ``floor``, ``exceeded``.
        title: the chart's accessible title.
    """
    if not layers:
        return ""
    errors = [_num(layer.get("max_abs")) or 0.0 for layer in layers]
    floors = [_num(layer.get("floor")) or 0.0 for layer in layers]
    low, high = _log_scale(errors + floors)
    plot_w, plot_h = _W - _PAD_L - 8, _H - _PAD_B - _PAD_T
    step = min(plot_w / len(layers), 60.0)

    def y(value: float) -> float:
        if value <= 0:
            return _PAD_T + plot_h
        frac = (math.log10(value) - low) / (high - low)
        return _PAD_T + plot_h * (1 - min(max(frac, 0.0), 1.0))

    parts = [f'<svg class="drift-chart" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for exp in range(int(low), int(high) + 1):
        gy = y(10.0 ** exp)
        parts.append(f'<line x1="{_PAD_L}" y1="{gy:.1f}" x2="{_W - 8}" y2="{gy:.1f}" stroke="#ddd"/>'
                     f'<text x="{_PAD_L - 4}" y="{gy + 4:.1f}" font-size="10" text-anchor="end">1e{exp}</text>')
    first = next((i for i, layer in enumerate(layers) if layer.get("exceeded")), None)
    points = []
    for i, layer in enumerate(layers):
        x0 = _PAD_L + i * step
        top = y(errors[i])
        color = _FAIL if layer.get("exceeded") else _PASS
        label = f"{layer.get('at')} ({layer.get('op')}): max abs {errors[i]:.3g}, floor {floors[i]:.3g}"
        parts.append(f'<rect class="bar{" first" if i == first else ""}" x="{x0 + step * 0.15:.1f}" '
                     f'y="{top:.1f}" width="{max(step * 0.7, 1):.1f}" height="{_PAD_T + plot_h - top:.1f}" '
                     f'fill="{color}"><title>{escape(label)}</title></rect>')
        points.append(f"{x0 + step / 2:.1f},{y(floors[i]):.1f}")
        if len(layers) <= 40:
            lx, ly = x0 + step / 2, _H - _PAD_B + 10
            parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="9" text-anchor="end" '
                         f'transform="rotate(-45 {lx:.1f} {ly:.1f})">{escape(str(layer.get("at"))[:24])}</text>')
    parts.append(f'<polyline class="floor" points="{" ".join(points)}" fill="none" stroke="{_FLOOR}" '
                 'stroke-width="2" stroke-dasharray="4 2"/>')
    parts.append('</svg>')
    return "".join(parts)


def _r_axis(values: list[float], threshold: float) -> tuple[float, float]:
    """The value range of an R chart: zoomed on the band around the threshold (from 0 a
    0.99 line and a bar of 1.0 are two pixels apart), widened to show every value."""
    margin = max(1.0 - threshold, 0.01)
    bottom = max(0.0, min([threshold - 4 * margin, *values]))
    top = max([1.0, *values])
    return math.floor(bottom * 100) / 100, top + (top - bottom) * 0.05


def bar_chart(items: list[tuple[str, float | None]], threshold: float, title: str) -> str:
    """An SVG bar chart of one value per label (e.g. R per route), with a threshold line;
    bars below the threshold are red. The axis is zoomed on the band around the threshold
    and labelled at its bottom, the threshold and 1. Labels with no value are left empty."""
    if not items:
        return ""
    values = [v for _, v in items if v is not None]
    bottom, top = _r_axis(values, threshold)
    height, pad_b = _H + 50, _PAD_B + 50  # room for long route names, rotated
    plot_w, plot_h = _W - _PAD_L - 8, height - pad_b - _PAD_T
    step = min(plot_w / len(items), 60.0)

    def y(value: float) -> float:
        frac = (min(max(value, bottom), top) - bottom) / (top - bottom)
        return _PAD_T + plot_h * (1 - frac)

    parts = [f'<svg class="r-chart" xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
             f'viewBox="0 0 {_W} {height}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for tick in sorted({bottom, 1.0}):
        gy = y(tick)
        parts.append(f'<line x1="{_PAD_L}" y1="{gy:.1f}" x2="{_W - 8}" y2="{gy:.1f}" stroke="#ddd"/>'
                     f'<text x="{_PAD_L - 4}" y="{gy + 4:.1f}" font-size="10" text-anchor="end">{tick:g}</text>')
    for i, (label, value) in enumerate(items):
        x0 = _PAD_L + i * step
        if value is not None:
            color = _PASS if value >= threshold else _FAIL
            parts.append(f'<rect class="bar" x="{x0 + step * 0.15:.1f}" y="{y(value):.1f}" '
                         f'width="{max(step * 0.7, 1):.1f}" height="{_PAD_T + plot_h - y(value):.1f}" '
                         f'fill="{color}"><title>{escape(label)}: {value:.4f}</title></rect>')
        lx, ly = x0 + step / 2, height - pad_b + 10
        parts.append(f'<text x="{lx:.1f}" y="{ly:.1f}" font-size="9" text-anchor="end" '
                     f'transform="rotate(-45 {lx:.1f} {ly:.1f})">{escape(label[:40])}</text>')
    ty = y(threshold)
    parts.append(f'<line class="threshold" x1="{_PAD_L}" y1="{ty:.1f}" x2="{_W - 8}" y2="{ty:.1f}" '
                 f'stroke="{_FLOOR}" stroke-dasharray="4 2"/><text x="{_PAD_L - 4}" y="{ty + 4:.1f}" '
                 f'font-size="10" text-anchor="end">{threshold:g}</text></svg>')
    return "".join(parts)
