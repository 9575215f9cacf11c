"""nightshift: a daily batch ML scoring framework on Luigi."""
from setuptools import setup

setup(
    name="nightshift",
    version="0.1.0",
    description="Nightly batch scoring of a whole client base: Spark features, scikit-learn model, gated publish.",
    packages=["nightshift", "tasks", "tasks.cli", "targets"],
    package_data={"tasks": ["log4j2.properties"]},
    python_requires=">=3.10",
    install_requires=[
        "luigi>=3.8.1,<4",
        # [connect]: the Spark Connect client, for [spark] master = sc://... (bin/spark-server)
        "pyspark[connect]>=4.0,<5",
        # PySpark 4.x does not support pandas 3 yet.
        "pandas>=2.2,<3",
        "numpy>=1.26,<3",
        "pyarrow>=15",
        "scikit-learn>=1.5,<2",
        # luigi's task history (luigid) breaks on SQLAlchemy 2.
        "sqlalchemy>=1.4.54,<2",
        "psycopg2-binary>=2.9,<3",
        # the night's metrics file for node_exporter's textfile collector
        "prometheus_client>=0.17,<1",
    ],
    entry_points={
        "console_scripts": [
            "nightshift-sample-data=nightshift.sample:main",
            "nightshift-status=tasks.cli.status:main",
            "nightshift-invalidate=tasks.cli.invalidate:main",
            "nightshift-approve=tasks.cli.approve:main",
            "nightshift-summary=tasks.cli.summary:main",
            "nightshift-scheduler=tasks.cli.scheduler:main",
            "nightshift-spark-server=tasks.cli.spark_server:main",
        ],
    },
    extras_require={
        "test": ["pytest>=8", "hypothesis>=6.100", "aiosmtpd>=1.4", "pillow>=10"],
    },
)
