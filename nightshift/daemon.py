"""Spark's Python daemon for bin/spark-server's sessions: the libraries scoring needs, imported before it forks.

Spark forks every Python worker of a session from one daemon process, which lives as long as the session. Runs keep
their Spark Connect session from night to night (tasks.spark.kept_session_id), so with what a worker needs imported
here once, Predict's workers start with it instead of importing it each night (about 1 s per worker: pandas,
pyarrow, and the scikit-learn modules a model's pickle references). A kept
session is keyed on the nightshift code and the installed packages, so a daemon never holds older code than a run's.

pyspark's own daemon imports nothing that starts threads before it forks; pyarrow starts jemalloc's background
thread, and numpy OpenBLAS's, both of which register fork handlers.
"""
import pandas  # noqa: F401
import pyarrow  # noqa: F401

from nightshift import executors, modeling  # noqa: F401  executors: what Predict's pickled functions reference

# Building a pipeline imports every estimator module a model's pickle can reference (compose, impute, linear_model,
# preprocessing, ...): unpickling the night's model in a forked worker then takes 5 ms instead of 70-110 ms.
modeling.build_model([], seed=0)

if __name__ == "__main__":
    # pyspark only when Spark runs it: importing the module (as the core's tests do) loads no Spark session code.
    from pyspark import daemon, worker  # noqa: F401  worker: the module each forked worker runs

    daemon.manager()
