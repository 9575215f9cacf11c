"""The history page from tiny inline rows: every day listed and linked, gaps allowed, nothing fetched."""
from nightshift.report import render_history


def day(date, psi, realized=None, verdict="accepted"):
    return {"date": date, "rows": 1000, "mean_score": 0.07, "psi": psi, "verdict": verdict,
            "model_version": "2026-01-05-abcdef12", "report": f"date={date}/report.html", "realized": realized}


def test_every_day_is_a_row_newest_first_with_its_link_and_realized_auc_when_known():
    days = [day("2026-01-05", 0.01, {"auc": 0.61, "expected_auc": 0.72, "verdict": "degraded"}),
            day("2026-01-07", None, verdict="rejected"), day("2026-01-06", 0.02)]
    page = render_history(days)
    rows = [page.index(f"<a href='date={d}/report.html'>{d}</a>") for d in ("2026-01-07", "2026-01-06", "2026-01-05")]
    assert rows == sorted(rows), "newest first"
    assert page.count("<tr class='day'") == 3
    assert "0.6100 <span class='verdict-degraded'>degraded</span>" in page
    assert page.count("labels not landed") == 2
    assert "3 scored day(s), 1 with realized performance" in page and "1 degraded" in page
    assert page.count("<svg class='chart'") == 3
    assert "<script" not in page and "http" not in page


def test_an_empty_history_still_renders():
    page = render_history([])
    assert "0 scored day(s)" in page and page.count("no data yet") == 3
