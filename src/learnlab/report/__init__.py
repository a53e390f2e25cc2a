"""The HTML report, drawn from the run store alone (no retraining)."""

from learnlab.report.html import build_report, flatten_config, latest_runs

__all__ = ["build_report", "flatten_config", "latest_runs"]
