"""An evaluation as a terminal table, as JSON, and as one self-contained HTML page with SVG plots."""

from __future__ import annotations

import html
import json
from datetime import datetime

from fraud_detection.evaluation.quality import MISS_REASONS, Evaluation, percentile

PERCENTILES = (0.5, 0.9, 0.99)


def summary(ev: Evaluation) -> dict:
    """The headline figures and the lists, JSON-ready."""
    def delays(kind: str) -> dict:
        values = ev.delays(kind)
        stats = {f"p{round(q * 100)}": percentile(values, q) for q in PERCENTILES}
        return {"count": len(values), **stats, "max": values[-1] if values else None}

    return {
        "attacks": ev.attacks, "detected": ev.detected, "recall": ev.recall,
        "alerts": ev.alerts, "false_alerts": len(ev.false_alerts), "precision": ev.precision,
        "decoys": ev.decoys, "decoys_alerted": ev.decoys_alerted,
        "event_time_delay_s": delays("event_time"), "processing_delay_s": delays("processing"),
        "missed_by_reason": {reason: sum(1 for m in ev.misses if m.reason == reason) for reason in MISS_REASONS},
        "missed_attacks": [
            {"source": m.attack.source, "card_id": m.attack.card_id, "kind": m.attack.kind,
             "first_event_time": _iso(m.attack.first_event_time), "last_event_time": _iso(m.attack.last_event_time),
             "txn_count": m.attack.txn_count, "reason": m.reason, "detail": m.detail, "rejected_records": m.rejected}
            for m in ev.misses],
        "false_alerts_list": [
            {"alert_id": f.alert.alert_id, "card_id": f.alert.card_id,
             "first_event_time": _iso(f.alert.first_event_time), "last_event_time": _iso(f.alert.last_event_time),
             "txn_count": f.alert.txn_count, "decoy": f.decoy.kind if f.decoy else None} for f in ev.false_alerts],
    }


def to_json(ev: Evaluation) -> str:
    return json.dumps(summary(ev), indent=2)


def to_table(ev: Evaluation, limit: int = 20) -> str:
    s = summary(ev)
    lines = [
        f"attacks {s['attacks']:,}   detected {s['detected']:,}   recall {_pct(s['recall'])}",
        f"alerts {s['alerts']:,}   false alerts {s['false_alerts']:,}   precision {_pct(s['precision'])}",
        f"decoys {s['decoys']:,}   decoys alerted {s['decoys_alerted']:,}",
        "missed by reason: " + ", ".join(f"{reason} {n:,}" for reason, n in s["missed_by_reason"].items()),
        "",
        f"{'detection delay':<34} {'n':>6} {'p50':>9} {'p90':>9} {'p99':>9} {'max':>9}",
    ]
    for key, label in (("event_time_delay_s", "event time (attack start -> raise)"),
                       ("processing_delay_s", "wall clock (Kafka -> stored alert)")):
        d = s[key]
        figures = " ".join(f"{_sec(d[k]):>9}" for k in ("p50", "p90", "p99", "max"))
        lines.append(f"{label:<34} {d['count']:>6} {figures}")
    for title, rows, columns in (
        ("missed attacks", s["missed_attacks"],
         ("card_id", "kind", "first_event_time", "txn_count", "reason", "source")),
        ("false alerts", s["false_alerts_list"], ("card_id", "first_event_time", "txn_count", "decoy")),
    ):
        lines += ["", f"{title}: {len(rows)}" + (f" (first {limit})" if len(rows) > limit else "")]
        lines += ["  " + "  ".join(str(row[c]) for c in columns) for row in rows[:limit]]
    return "\n".join(lines)


def to_html(ev: Evaluation, title: str = "fraud-detection: detection quality") -> str:
    """One page, no external assets: the figures, a timeline of attacks vs alerts, delay histograms, lists."""
    s = summary(ev)
    cards = "".join(f"<div class=card><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>" for k, v in (
        ("recall", _pct(s["recall"])), ("precision", _pct(s["precision"])),
        ("attacks detected", f"{s['detected']:,} / {s['attacks']:,}"), ("false alerts", f"{s['false_alerts']:,}"),
        ("decoys alerted", f"{s['decoys_alerted']:,} / {s['decoys']:,}"),
        ("event-time delay p50", _sec(s["event_time_delay_s"]["p50"])),
        ("wall-clock delay p99", _sec(s["processing_delay_s"]["p99"]))))
    tables = "".join(_html_table(name, rows) for name, rows in (
        ("Missed attacks", s["missed_attacks"]), ("False alerts", s["false_alerts_list"])))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
.card {{ border: 1px solid #ccc; border-radius: 6px; padding: .6rem 1rem; min-width: 9rem; }}
.card b {{ display: block; font-size: 1.5rem; }} .card span {{ color: #666; font-size: .85rem; }}
table {{ border-collapse: collapse; margin: .5rem 0 1.5rem; font-size: .85rem; }}
td, th {{ border: 1px solid #ddd; padding: .2rem .5rem; text-align: left; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<div class=cards>{cards}</div>
<h2>Timeline (event time)</h2>
{timeline_svg(ev)}
<h2>Detection delay per attack</h2>
{histogram_svg(ev.delays("event_time"), "event time: attack start to raising transaction (s)")}
{histogram_svg(ev.delays("processing"), "wall clock: raising transaction in Kafka to stored alert (s)")}
{tables}
</body></html>
"""


def timeline_svg(ev: Evaluation, width: int = 900, lane: int = 28) -> str:
    """Attacks (green caught, red missed) on one lane, alerts (blue true, orange false) on the other."""
    spans = [(d.attack.first_event_time, d.attack.last_event_time, "#2a9d4b" if d.alert else "#d62828")
             for d in ev.detections]
    false_ids = {f.alert.alert_id for f in ev.false_alerts}
    alert_spans = {d.alert.alert_id: d.alert for d in ev.detections if d.alert}
    alert_spans.update({f.alert.alert_id: f.alert for f in ev.false_alerts})
    marks = [(a.first_event_time, a.last_event_time, "#f28e2b" if i in false_ids else "#1f77b4")
             for i, a in alert_spans.items()]
    times = [t for first, last, _ in spans + marks for t in (first, last)]
    if not times:
        return "<p>No attacks or alerts in this range.</p>"
    low, high = min(times).timestamp(), max(times).timestamp()
    scale = (width - 120) / max(high - low, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{3 * lane + 20}" role="img">',
             f'<text x="0" y="{lane - 8}" font-size="12">attacks</text>',
             f'<text x="0" y="{2 * lane - 8}" font-size="12">alerts</text>']
    for row, items in ((0, spans), (1, marks)):
        for first, last, colour in items:
            x = 100 + (first.timestamp() - low) * scale
            w = max(2.0, (last.timestamp() - first.timestamp()) * scale)
            parts.append(f'<rect x="{x:.1f}" y="{row * lane + 4}" width="{w:.1f}" height="{lane - 12}" '
                         f'fill="{colour}" fill-opacity="0.7"/>')
    parts.append(f'<text x="100" y="{3 * lane + 12}" font-size="11">{html.escape(_iso(min(times)))}</text>')
    parts.append(f'<text x="{width - 10}" y="{3 * lane + 12}" font-size="11" text-anchor="end">'
                 f'{html.escape(_iso(max(times)))}</text></svg>')
    return "\n".join(parts)


def histogram_svg(values: list[float], label: str, bins: int = 20, width: int = 900, height: int = 160) -> str:
    if not values:
        return f"<p>{html.escape(label)}: no detected attacks with this measurement.</p>"
    low, high = min(values), max(values)
    step = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / step))] += 1
    bar = (width - 40) / bins
    top = max(counts)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 40}" role="img">',
             f'<text x="0" y="14" font-size="12">{html.escape(label)}, {len(values)} attacks</text>']
    for i, c in enumerate(counts):
        h = (height - 30) * c / top
        parts.append(f'<rect x="{20 + i * bar:.1f}" y="{height - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                     f'fill="#1f77b4"><title>{low + i * step:.2f}-{low + (i + 1) * step:.2f} s: {c}</title></rect>')
    parts.append(f'<text x="20" y="{height + 16}" font-size="11">{low:.2f} s</text>')
    parts.append(f'<text x="{width - 20}" y="{height + 16}" font-size="11" text-anchor="end">{high:.2f} s</text>')
    return "\n".join(parts) + "</svg>"


def _html_table(name: str, rows: list[dict]) -> str:
    if not rows:
        return f"<h2>{html.escape(name)}: none</h2>"
    head = "".join(f"<th>{html.escape(k)}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r.values()) + "</tr>" for r in rows)
    return f"<h2>{html.escape(name)}: {len(rows)}</h2><table><tr>{head}</tr>{body}</table>"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _sec(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _iso(value: datetime) -> str:
    return value.isoformat()
