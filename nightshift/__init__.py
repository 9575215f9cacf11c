"""nightshift's pure core: parsing, modeling, metrics, checks, dates, executor functions, contracts; no luigi, no Spark."""
