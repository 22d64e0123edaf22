"""The QuickSight embed API's Lambda (see app.py)."""
