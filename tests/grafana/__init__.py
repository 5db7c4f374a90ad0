"""Grafana provisioning: generated dashboards, alert rules and datasources, proven against the
real Prometheus and trace store (``test_proof``) and checked for format (``test_provisioning``)."""
