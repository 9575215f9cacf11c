"""Let a rejected batch through: records who approved it and why in reports/date=D/approval.json.

    bin/approve --date D --reason TEXT [--by NAME]

The next run of that date (e.g. `luigi --module tasks DailyScoring --date D`) validates again, finds
the approval, marks the batch `approved` and publishes it; the report and publish_log show who and why.
Exit status: 0 recorded, 1 refused (no rejected validation report for that date, or no reason).
"""
import argparse
import datetime as dt
import getpass
import sys

from tasks.errors import ApprovalError
from tasks.validate import approve

PROG = "bin/approve"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="Scoring date YYYY-MM-DD.")
    parser.add_argument("--reason", required=True, help="Why the batch may be published despite the failed checks.")
    parser.add_argument("--by", default=None, help="Who approves (default: the OS user).")
    args = parser.parse_args(argv)
    try:
        uri = approve(args.date, args.reason, args.by or getpass.getuser())
    except ApprovalError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    print(f"approved {args.date}: {uri}\nrerun: .venv/bin/luigi --module tasks DailyScoring --date {args.date}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
