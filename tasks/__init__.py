"""nightshift's Luigi tasks: `luigi --module tasks DailyScoring --date YYYY-MM-DD`."""
