#!/usr/bin/env python3
"""Conventions of the Prometheus rules that promtool does not check (needs PyYAML).

  - recording rule names follow level:metric:operations;
  - every alert has labels.severity in {warning, critical}, annotations summary,
    description and runbook_url; the summary of an alert about Pipefy organizations names
    the organization; the description shows a number ($value or a query);
  - every runbook_url points at docs/runbook.md#<anchor> and the anchor exists there
    (GitHub heading slugs), and every alert has its own section;
  - every alert is tested in rules_test.yml both firing and not firing;
  - every alert appears in README.md (the alert table).
Exit status 0 when everything passes, 1 otherwise.
"""
import argparse
import re
import sys

import yaml

RUNBOOK_BASE = "https://github.com/pipefy-exporter/pipefy-exporter/blob/main/docs/runbook.md#"
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
    ap.add_argument("--docs", default="README.md")
    args = ap.parse_args()
    errors = []

    with open(args.rules, encoding="utf-8") as f:
        rules = yaml.safe_load(f)
    with open(args.runbook, encoding="utf-8") as f:
        runbook = f.read()
    anchors = {github_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+)$", runbook, re.M)}
    with open(args.tests, encoding="utf-8") as f:
        tests = yaml.safe_load(f)
    with open(args.docs, encoding="utf-8") as f:
        docs = f.read()

    firing, silent = set(), set()
    for group in tests.get("tests", []):
        for t in group.get("alert_rule_test", []) or []:
            (firing if t.get("exp_alerts") else silent).add(t.get("alertname"))

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
            if re.search(r"\bpipefy[_:]", r.get("expr", "")) and \
                    "$labels.organization_name" not in ann.get("summary", ""):
                errors.append(f"{name}: summary does not name the organization")
            desc = ann.get("description", "")
            if "$value" not in desc and "query" not in desc:
                errors.append(f"{name}: description shows no number ($value or query)")
            url = ann.get("runbook_url", "")
            if not url.startswith(RUNBOOK_BASE):
                errors.append(f"{name}: runbook_url must start with {RUNBOOK_BASE}")
            else:
                anchor = url[len(RUNBOOK_BASE):]
                if anchor not in anchors:
                    errors.append(f"{name}: anchor #{anchor} not found in {args.runbook}")
                if anchor != github_slug(name):
                    errors.append(f"{name}: runbook anchor #{anchor} is not the alert's own section")
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
    print(f"  {len(records)} recording rules, {len(alerts)} alerts: "
          f"{'ok' if not errors else f'{len(errors)} problem(s)'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
