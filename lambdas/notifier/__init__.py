"""Job-status notifier: DynamoDB stream of the job table -> Chime, Slack and Teams webhooks.

The handler is ``lambdas.notifier.app.handler``; everything it calls is a pure function in this package.
"""
