"""Generate dbpulse's Grafana dashboards (grafana-foundation-sdk) and alert rules.

    python grafana/generate.py            # write grafana/dashboards/*.json and the alert rules
    python grafana/generate.py --check    # exit 1 if a committed file differs from the code

Needs ``grafana-foundation-sdk==1769699379!11.6.0`` (Python >= 3.11) and PyYAML.

The code is the package ``grafana/gen/``: one module a dashboard (``database.py``, ``flows.py``,
``pipeline.py``) over ``common.py`` (datasources, budgets, queries) and ``panels.py`` (panel
builders, layout), and ``alerts.py`` for the rules. This script only writes or checks.

Outputs (committed, provisioned by docker-compose.yml):

* ``grafana/dashboards/dbpulse-database.json``, ``dbpulse-flows.json``, ``dbpulse-pipeline.json``
  (built with the SDK's builders, serialised with sorted keys and stable panel ids);
* ``grafana/provisioning/alerting/rules.yaml`` in Grafana's *file provisioning* format (not the
  SDK's alerting builders, which follow the HTTP API's shape). Every ``$`` of a query or
  annotation is written ``$$``, because Grafana expands environment variables in provisioning
  files.

The PromQL uses the names the collector's ``prometheus`` exporter produces (see README's
metric reference); ``tests/grafana/`` runs every query against the real Prometheus and Tempo.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# ``grafana/`` is no package: run as a script or loaded from its path (tests/grafana), this file
# finds ``gen`` next to it.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from gen import ALERT_RULES, DASHBOARDS, GRAFANA, outputs  # noqa: E402

__all__ = ["ALERT_RULES", "DASHBOARDS", "main", "outputs"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, content in outputs().items():
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    for path in stale:
        verb = "out of date" if args.check else "written"
        print(f"{path.relative_to(GRAFANA.parent)}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
