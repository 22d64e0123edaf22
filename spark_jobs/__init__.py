"""PySpark jobs that EMR steps run with spark-submit (each file also runs with plain `python`)."""
