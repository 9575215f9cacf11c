"""Print what a night produced: rows published, PSI and verdict, model quality, where things are.

    bin/summary --date D

Reads the publish_log row, the validation report and the metadata of the model that scores D; no Spark starts.
Exit status: 0 when the day is published, 1 when it is not.
"""
import argparse
import datetime as dt
import json

from nightshift.schema import HTML_FILE, REPORT_FILE
from targets import fs, sql
from targets.model import METADATA_FILE
from tasks import config, monitor
from tasks.predict import Predict
from tasks.validate import ValidatePredictions


def summary_lines(date: dt.date) -> tuple[list[str], bool]:
    """The lines to print for `date`, and whether the day is in production."""
    url = config.publish().database_url()
    reports = ValidatePredictions(date=date).output()
    model = Predict(date=date).requires()["model"].output()
    row = sql.publication(url, date)
    lines = [f"nightshift {date}"]
    lines.append(f"  published:  {row['rows']} rows, model {row['model_version']}, at {row['published_at']}" if row
                 else "  published:  nothing")
    if fs.is_file(reports.file(REPORT_FILE)):
        report = json.loads(reports.read_file(REPORT_FILE))
        psi = "n/a" if report.get("psi") is None else f"{report['psi']:.4f}"
        lines.append(f"  validation: {report['verdict']}, PSI {psi}")
        quarantine = report.get("quarantine")
        if quarantine:
            for kind in ("clients", "transactions"):
                reasons = ", ".join(f"{reason} {n}" for reason, n in quarantine[kind].items()) or "none"
                lines.append(f"  quarantine: {kind}: {sum(quarantine[kind].values())} of "
                             f"{quarantine['rows'][kind]} rows ({reasons})")
        lines.append(f"  report:     {reports.file(HTML_FILE)}")
    if fs.is_file(model.file(METADATA_FILE)):
        meta = model.metadata()
        oracle_auc = f" (oracle {meta['oracle_auc']:.3f})" if "oracle_auc" in meta else ""
        oracle_brier = f" (oracle {meta['oracle_brier']:.4f})" if "oracle_brier" in meta else ""
        lines.append(f"  model:      {meta['model_version']}, holdout AUC {meta['holdout_auc']:.3f}{oracle_auc}, "
                     f"Brier {meta['brier']:.4f}{oracle_brier}")
    lines.append(f"  database:   {sql.engine(url).url.render_as_string(hide_password=True)}")
    lines.extend(monitor.summary_lines(date))
    return lines, row is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/summary", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="Scoring date YYYY-MM-DD.")
    args = parser.parse_args(argv)
    lines, published = summary_lines(args.date)
    print("\n".join(lines))
    return 0 if published else 1


if __name__ == "__main__":
    raise SystemExit(main())
