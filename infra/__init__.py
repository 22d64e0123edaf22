"""Deployment of covid19-lake: CloudFormation templates, MWAA artifacts, packaging and deploy scripts."""
