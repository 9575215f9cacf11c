"""The pages people read: a night's validation report and the history of every scored day. Pure string building.

Both pages are self-contained (no script, nothing fetched): they open from a mail link, a file share
or an archive years later exactly as they were written.
"""
import datetime as dt
import html
import math

_COLOURS = {"reference": "#7f9fb0", "previous": "#9c9c9c", "today": "#d9622b"}
PSI_WARN_COLOUR, PSI_FAIL_COLOUR, PSI_OK_COLOUR = "#d9a12b", "#c0392b", "#7f9fb0"
LINE_COLOURS = {"psi": "#d9622b", "mean_score": "#2b6cd9", "auc": "#2b9c5a", "expected_auc": "#9c9c9c"}

_STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
    "td,th{padding:4px 10px;border-bottom:1px solid #ccc;text-align:left}table.history td{white-space:nowrap}"
    "tr.fail td{color:#b00;font-weight:bold}tr.warn td{color:#b60}tr.skip td{color:#888}"
    ".verdict-rejected,.verdict-degraded{color:#b00}.verdict-approved{color:#b60}"
    ".verdict-accepted,.verdict-ok{color:#080}td.num{text-align:right;font-variant-numeric:tabular-nums}"
)


def _cell(value) -> str:
    if isinstance(value, dict):
        value = ", ".join(f"{k} {v}" for k, v in value.items())
    return html.escape("" if value is None else str(value))


def _fmt(value, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _histogram_svg(edges: list[float], series: dict[str, tuple[str, list[int]]]) -> str:
    """Grouped bars of each series' share per bin; bins are the model's reference quantiles, so unequal widths."""
    shares = {key: (label, [c / max(sum(counts), 1) for c in counts]) for key, (label, counts) in series.items()}
    top = max(max(values) for _, values in shares.values()) or 1.0
    bins, groups = len(edges) - 1, len(shares)
    left, bottom, height, slot = 60, 250, 200, 64
    bar = (slot - 10) / groups
    width = left + bins * slot + 20
    parts = [f"<svg width='{width}' height='{bottom + 90}' role='img' "
             "aria-label='histogram of scores'>",
             f"<line x1='{left}' y1='{bottom}' x2='{left + bins * slot}' y2='{bottom}' stroke='#333'/>",
             f"<line x1='{left}' y1='{bottom}' x2='{left}' y2='{bottom - height}' stroke='#333'/>"]
    for k in range(5):
        value = top * k / 4
        y = bottom - height * k / 4
        parts.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' font-size='11'>{value:.0%}</text>")
    for i in range(bins):
        x0 = left + i * slot + 5
        for g, (key, (label, values)) in enumerate(shares.items()):
            h = height * values[i] / top
            parts.append(f"<rect class='{key}' x='{x0 + g * bar:.1f}' y='{bottom - h:.1f}' width='{bar - 1:.1f}' "
                         f"height='{h:.1f}' fill='{_COLOURS[key]}'><title>{html.escape(label)}: "
                         f"{values[i]:.1%}</title></rect>")
        parts.append(f"<text x='{x0 + (slot - 10) / 2:.1f}' y='{bottom + 14}' text-anchor='middle' font-size='10'>"
                     f"{edges[i]:.3f}</text>")
    parts.append(f"<text x='{left + bins * slot / 2}' y='{bottom + 32}' text-anchor='middle' font-size='12'>"
                 "score bin (lower edge; bins are the reference's deciles)</text>")
    for g, (key, (label, _)) in enumerate(shares.items()):
        y = bottom + 50 + g * 14
        parts.append(f"<rect x='{left}' y='{y - 9}' width='10' height='10' fill='{_COLOURS[key]}'/>"
                     f"<text x='{left + 16}' y='{y}' font-size='12'>{html.escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _psi_colour(psi: float, warn: float, fail: float) -> str:
    return PSI_FAIL_COLOUR if psi >= fail else PSI_WARN_COLOUR if psi >= warn else PSI_OK_COLOUR


def _feature_drift_html(report: dict) -> str:
    """The model's input features ranked by PSI against their training reference, each with a bar."""
    ranked = report.get("feature_psi") or {}
    note = report.get("feature_psi_note")
    if not ranked:
        return f"<h2>Feature drift</h2><p class='note'>{_cell(note or 'no feature reference')}</p>"
    psi_check = next((c for c in report.get("checks", []) if c["name"] == "psi"), {})
    threshold = psi_check.get("threshold") or {}
    warn, fail = threshold.get("warn", 0.1), threshold.get("fail", 0.25)
    top = max(max(ranked.values()), fail)
    rows = []
    for name, psi in ranked.items():
        width = 240 * psi / top if top else 0
        rows.append(f"<tr><td>{_cell(name)}</td><td class='num'>{psi:.4f}</td><td><svg width='250' height='14'>"
                    f"<rect class='drift' x='0' y='2' width='{width:.1f}' height='10' "
                    f"fill='{_psi_colour(psi, warn, fail)}'/></svg></td></tr>")
    return ("<h2>Feature drift</h2><p>PSI of each model input against the model's training data, most drifted "
            f"first (bars: orange from {warn}, red from {fail}; informs, does not gate).</p>"
            "<table class='drift'><tr><th>feature</th><th>PSI</th><th></th></tr>" + "".join(rows) + "</table>"
            + (f"<p class='note'>{_cell(note)}</p>" if note else ""))


def _volumes_html(volumes: list[dict]) -> str:
    """One line: rows of each raw drop of the night and its ratio to the median of the days before."""
    def one(v: dict) -> str:
        ratio = "" if v.get("ratio") is None else f" ({v['ratio']:.2f} x median {v['median']:g})"
        return f"{v['drop'].rsplit('/raw/', 1)[-1]}: {v['measured']} rows{ratio}"

    return ("<p class='volumes'>Raw volumes: " + html.escape("; ".join(one(v) for v in volumes)) + "</p>"
            if volumes else "")


def render_html(report: dict) -> str:
    """A night's page: the verdict, the check table, the score histogram and the features ranked by drift."""
    rows = "".join(
        f"<tr class='{c['verdict']}'><td>{_cell(c['name'])}</td><td>{_cell(c['measured'])}</td>"
        f"<td>{_cell(c['threshold'])}</td><td>{_cell(c['verdict'])}</td><td>{_cell(c.get('detail'))}</td></tr>"
        for c in report["checks"]
    )
    reference = report["reference_histogram"]
    series = {"reference": (f"reference: model {report['model_version']} holdout", reference["counts"])}
    previous = report.get("previous")
    if previous and previous.get("counts") and sum(previous["counts"]):
        series["previous"] = (f"last published day {previous['date']}", previous["counts"])
    series["today"] = (f"today {report['date']}", report["histogram"])
    approval = report.get("approval")
    approved = (f"<p class='approval'>Approved by {_cell(approval.get('by'))} at {_cell(approval.get('at'))}: "
                f"{_cell(approval.get('reason'))}</p>") if approval else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>nightshift {report['date']}: {report['verdict']}</title><style>{_STYLE}</style></head><body>"
        f"<h1>Validation {report['date']}: <span class='verdict-{report['verdict']}'>{report['verdict']}</span></h1>"
        f"{approved}<p>model {_cell(report['model_version'])}, {report['rows']} rows, mean score "
        f"{_cell(None if report['mean_score'] is None else round(report['mean_score'], 5))}, PSI {_cell(report['psi'])}"
        "</p><table><tr><th>check</th><th>measured</th><th>threshold</th><th>verdict</th><th>detail</th></tr>"
        f"{rows}</table><h2>Score distribution</h2>{_histogram_svg(reference['edges'], series)}"
        f"{_volumes_html(report.get('volumes', []))}{_feature_drift_html(report)}"
        "<p><a href='../index.html'>history of every scored day</a></p></body></html>"
    )


def _line_chart_svg(title: str, series: dict[str, list[tuple[dt.date, float | None]]],
                    guides: list[tuple[float, str]] = (), width: int = 760, height: int = 200) -> str:
    """Lines over calendar time (a missing value breaks the line), dots with their value, dashed guide lines."""
    values = [v for points in series.values() for _, v in points if v is not None] + [g for g, _ in guides]
    days = sorted({d for points in series.values() for d, _ in points})
    left, right, top_pad, bottom_pad = 60, 20, 28, 30
    plot_w, plot_h = width - left - right, height - top_pad - bottom_pad
    parts = [f"<svg class='chart' width='{width}' height='{height}' role='img' aria-label='{html.escape(title)}'>",
             f"<text x='{left}' y='16' font-size='13' font-weight='bold'>{html.escape(title)}</text>"]
    if not values or not days:
        parts.append(f"<text x='{left}' y='{top_pad + plot_h / 2}' font-size='12' fill='#888'>no data yet</text></svg>")
        return "".join(parts)
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 0.5 * (abs(low) or 1) * 0.1, high + 0.5 * (abs(high) or 1) * 0.1
    pad = (high - low) * 0.08
    low, high = (max(low - pad, 0.0) if low >= 0 else low - pad), high + pad
    span = max((days[-1] - days[0]).days, 1)

    def x(day: dt.date) -> float:
        return left + (plot_w * (day - days[0]).days / span if len(days) > 1 else plot_w / 2)

    def y(value: float) -> float:
        return top_pad + plot_h * (1 - (value - low) / (high - low))

    parts.append(f"<line x1='{left}' y1='{top_pad + plot_h}' x2='{left + plot_w}' y2='{top_pad + plot_h}' stroke='#333'/>"
                 f"<line x1='{left}' y1='{top_pad}' x2='{left}' y2='{top_pad + plot_h}' stroke='#333'/>")
    # Enough decimals that the five ticks differ, however narrow the range.
    digits = min(max(3, 2 - int(math.floor(math.log10((high - low) / 4)))), 8)
    for k in range(5):
        value = low + (high - low) * k / 4
        parts.append(f"<text x='{left - 6}' y='{y(value) + 4:.1f}' text-anchor='end' font-size='10'>"
                     f"{value:.{digits}f}</text>")
    ends = ((days[0], "start"), (days[-1], "end")) if len(days) > 1 else ((days[0], "middle"),)
    for day, anchor in ends:
        parts.append(f"<text x='{x(day):.1f}' y='{height - 10}' text-anchor='{anchor}' font-size='10'>{day}</text>")
    for value, label in guides:
        parts.append(f"<line x1='{left}' y1='{y(value):.1f}' x2='{left + plot_w}' y2='{y(value):.1f}' stroke='#b00' "
                     f"stroke-dasharray='4 3'/><text x='{left + plot_w}' y='{y(value) - 3:.1f}' text-anchor='end' "
                     f"font-size='10' fill='#b00'>{html.escape(label)}</text>")
    for n, (name, points) in enumerate(series.items()):
        colour = LINE_COLOURS.get(name, "#333")
        run: list[str] = []
        segments = []
        for day, value in sorted(points):
            if value is None:
                segments.append(run)
                run = []
            else:
                run.append(f"{x(day):.1f},{y(value):.1f}")
        segments.append(run)
        dashed = " stroke-dasharray='6 3'" if name == "expected_auc" else ""
        for seg in segments:
            if len(seg) > 1:
                parts.append(f"<polyline class='{name}' points='{' '.join(seg)}' fill='none' stroke='{colour}' "
                             f"stroke-width='2'{dashed}/>")
        for day, value in points:
            if value is not None:
                parts.append(f"<circle class='{name}' cx='{x(day):.1f}' cy='{y(value):.1f}' r='3' fill='{colour}'>"
                             f"<title>{day} {name} {value:.4f}</title></circle>")
        if len(series) > 1:
            parts.append(f"<rect x='{width - right - 250 + n * 130}' y='{top_pad - 16}' width='10' height='3' "
                         f"fill='{colour}'/><text x='{width - right - 236 + n * 130}' y='{top_pad - 12}' "
                         f"font-size='10'>{html.escape(name)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def render_history(days: list[dict], psi_warn: float = 0.1, psi_fail: float = 0.25) -> str:
    """reports/index.html: one row per scored day, newest first, and PSI, mean score and realized AUC over time.

    Each item of `days` holds `date` (ISO), `rows`, `mean_score`, `psi`, `verdict`, `model_version`,
    `report` (a link relative to the page) and `realized` (performance.json's content, or None
    while the day's labels have not landed).
    """
    ordered = sorted(days, key=lambda d: d["date"])
    when = [(dt.date.fromisoformat(d["date"]), d) for d in ordered]
    realized = [(day, d["realized"]) for day, d in when if d.get("realized")]
    charts = [
        _line_chart_svg("PSI of the scores against the model's reference", {"psi": [(day, d.get("psi")) for day, d in when]},
                        [(psi_warn, f"warn {psi_warn}"), (psi_fail, f"fail {psi_fail}")]),
        _line_chart_svg("Mean score", {"mean_score": [(day, d.get("mean_score")) for day, d in when]}),
        _line_chart_svg("Realized AUC (labels landed) and the model's holdout AUC",
                        {"auc": [(day, r.get("auc")) for day, r in realized],
                         "expected_auc": [(day, r.get("expected_auc")) for day, r in realized]}),
    ]
    rows = []
    for _, d in reversed(when):
        r = d.get("realized") or {}
        auc = (f"{_fmt(r.get('auc'), 4)} <span class='verdict-{_cell(r.get('verdict'))}'>{_cell(r.get('verdict'))}</span>"
               if r else "<span class='pending'>labels not landed</span>")
        rows.append(
            f"<tr class='day' id='d{_cell(d['date'])}'><td><a href='{_cell(d.get('report'))}'>{_cell(d['date'])}</a></td>"
            f"<td class='num'>{_cell(d.get('rows'))}</td><td class='num'>{_fmt(d.get('mean_score'), 5)}</td>"
            f"<td class='num'>{_fmt(d.get('psi'), 4)}</td>"
            f"<td class='verdict-{_cell(d.get('verdict'))}'>{_cell(d.get('verdict'))}</td>"
            f"<td>{_cell(d.get('model_version'))}</td><td class='num'>{auc}</td>"
            f"<td class='num'>{_fmt(r.get('expected_auc'), 4)}</td></tr>")
    degraded = sum(1 for _, r in realized if r.get("verdict") == "degraded")
    summary = (f"{len(ordered)} scored day(s), {len(realized)} with realized performance"
               + (f", <span class='verdict-degraded'>{degraded} degraded</span>" if degraded else ""))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>nightshift history</title>"
        f"<style>{_STYLE}</style></head><body><h1>nightshift: every scored day</h1><p>{summary}</p>"
        + "".join(f"<div>{c}</div>" for c in charts)
        + "<table class='history'><tr><th>date</th><th>rows</th><th>mean score</th><th>PSI</th><th>verdict</th>"
          "<th>model version</th><th>realized AUC</th><th>holdout AUC</th></tr>" + "".join(rows) + "</table></body></html>"
    )
