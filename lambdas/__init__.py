"""AWS Lambda functions of covid19-lake, each packaged as its own zip (see lambdas/notifier/package.py)."""
