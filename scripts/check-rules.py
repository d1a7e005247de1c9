#!/usr/bin/env python3
"""Conventions of the Prometheus rules that promtool does not check (needs PyYAML).

  - recording rule names follow level:metric:operations;
  - every alert has labels.severity in {warning, critical}, annotations summary,
    description and runbook_url; the summary of an alert about Pipefy organizations names
    the organization; the description shows a number ($value or a query);
  - every runbook_url, in the rules and in the expected annotations of their unit tests,
    is <project>/blob/main/docs/runbook.md#<anchor> and the anchor exists there (GitHub
    heading slugs), and every alert has its own section;
  - <project> is the chart's `home` (Chart.yaml), the one place that names the project's
    URL: the chart's `sources`, the systemd unit's Documentation= and every GitHub URL of
    the rules files must be it (the Helm chart can point the alerts elsewhere with
    prometheusRule.runbookBaseURL; the plain rules file keeps the project's);
  - every alert is tested in rules_test.yml both firing and not firing;
  - every alert appears in docs/dashboards-and-alerts.md (the alert table).
Exit status 0 when everything passes, 1 otherwise.
"""
import argparse
import re
import sys

import yaml

CHART = "deploy/helm/pipefy-exporter/Chart.yaml"
# Where the runbook lives under the project URL; the chart's PrometheusRule template
# builds the same prefix from .Chart.Home to replace it (templates/prometheusrule.yaml).
RUNBOOK_PATH = "/blob/main/docs/runbook.md"
GITHUB_URL_RE = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
RECORD_RE = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")


def github_slug(heading):
    s = heading.strip().lower()
    s = re.sub(r"[^\w\- ]", "", s)
    return s.replace(" ", "-")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", default="deploy/prometheus/rules.yml")
    ap.add_argument("--tests", default="deploy/prometheus/rules_test.yml")
    ap.add_argument("--runbook", default="docs/runbook.md")
    ap.add_argument("--docs", default="docs/dashboards-and-alerts.md")
    ap.add_argument("--unit", default="deploy/systemd/pipefy-exporter.service")
    args = ap.parse_args()
    errors = []

    with open(CHART, encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    project = chart.get("home", "").rstrip("/")
    if not GITHUB_URL_RE.fullmatch(project):
        errors.append(f"{CHART}: home {project!r} is not a https://github.com/OWNER/REPO URL")
    runbook_base = f"{project}{RUNBOOK_PATH}#"
    if chart.get("sources") != [project]:
        errors.append(f"{CHART}: sources must be [{project}] (the chart's home)")
    with open(args.unit, encoding="utf-8") as f:
        documentation = re.findall(r"^Documentation=(.*)$", f.read(), re.M)
    if documentation != [project]:
        errors.append(f"{args.unit}: Documentation= is {documentation}, expected {project} ({CHART} home)")
    for path in (args.rules, args.tests):
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                for url in GITHUB_URL_RE.findall(line):
                    if url != project:
                        errors.append(f"{path}:{lineno}: {url} is not the project URL {project} ({CHART} home)")

    with open(args.rules, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    with open(args.runbook, encoding="utf-8") as f:
        runbook = f.read()
    anchors = {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", runbook, re.M)}
    with open(args.tests, encoding="utf-8") as f:
        tests = yaml.safe_load(f)
    with open(args.docs, encoding="utf-8") as f:
        docs = f.read()

    def check_runbook_url(where, name, url):
        if not url.startswith(runbook_base):
            errors.append(f"{where}: runbook_url must start with {runbook_base}")
            return
        anchor = url[len(runbook_base):]
        if anchor not in anchors:
            errors.append(f"{where}: anchor #{anchor} not found in {args.runbook}")
        if anchor != github_slug(name):
            errors.append(f"{where}: runbook anchor #{anchor} is not the alert's own section")

    firing, silent = set(), set()
    for group in tests.get("tests", []):
        for t in group.get("alert_rule_test", []) or []:
            (firing if t.get("exp_alerts") else silent).add(t.get("alertname"))
            for alert in t.get("exp_alerts") or []:
                url = (alert.get("exp_annotations") or {}).get("runbook_url")
                if url is not None:
                    check_runbook_url(f"{args.tests}: {t.get('alertname')}", t.get("alertname", "?"), url)

    alerts, records = [], []
    for group in rules.get("groups", []):
        for r in group.get("rules", []):
            if "record" in r:
                records.append(r["record"])
                if not RECORD_RE.match(r["record"]):
                    errors.append(f"recording rule {r['record']!r} is not level:metric:operations")
                continue
            name = r.get("alert", "?")
            alerts.append(name)
            labels = r.get("labels") or {}
            ann = r.get("annotations") or {}
            if labels.get("severity") not in ("warning", "critical"):
                errors.append(f"{name}: severity label must be warning or critical")
            for key in ("summary", "description", "runbook_url"):
                if not (ann.get(key) or "").strip():
                    errors.append(f"{name}: missing annotation {key}")
            # Organization-level series must name their organization; the exporter's own
            # (pipefy_exporter_*) concern an instance, which the summary names instead.
            if re.search(r"\bpipefy[_:](?!exporter_)", r.get("expr", "")) and \
                    "$labels.organization_name" not in ann.get("summary", ""):
                errors.append(f"{name}: summary does not name the organization")
            desc = ann.get("description", "")
            if "$value" not in desc and "query" not in desc:
                errors.append(f"{name}: description shows no number ($value or query)")
            check_runbook_url(name, name, ann.get("runbook_url", ""))
            if name not in firing:
                errors.append(f"{name}: no unit test shows it firing ({args.tests})")
            if name not in silent:
                errors.append(f"{name}: no unit test shows it not firing ({args.tests})")
            if name not in docs:
                errors.append(f"{name}: not listed in {args.docs}")

    if len(set(alerts)) != len(alerts):
        errors.append("duplicate alert names")
    for e in errors:
        print(f"  ERROR {e}")
    print(f"  project URL {project} ({CHART} home); runbook links {runbook_base}<alert>")
    print(f"  {len(records)} recording rules, {len(alerts)} alerts: "
          f"{'ok' if not errors else f'{len(errors)} problem(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
