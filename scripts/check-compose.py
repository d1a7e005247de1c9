#!/usr/bin/env python3
"""Offline checks of deploy/docker-compose.yml and the files it mounts (needs PyYAML,
check-jsonschema and promtool; no Docker daemon).

  1. the compose file validates against the Compose Specification schema
     (check-jsonschema --builtin-schema vendor.compose-spec);
  2. every bind-mounted host path exists, images are pinned (no :latest), the exporter is
     built from the repository's Dockerfile and starts in --demo mode with a commented
     switch to a config file, every service is on the user network;
  3. Prometheus's configuration, with the files laid out as the containers see them, passes
     `promtool check config` (so the rule file path inside the container is right) and
     loads the canonical rules file; its scrape target and Alertmanager address are
     compose services; the job name is the one the rules expect;
  4. Grafana's provisioning points at the mounted dashboards and at the Prometheus service.
Exit status 0 when everything passes, 1 otherwise.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

errors = []


def err(msg):
    errors.append(msg)
    print(f"  ERROR {msg}")


def ok(msg):
    print(f"  ok {msg}")


def binds(service, base):
    """(host path, container path) of the service's bind mounts."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            src, dst = parts[0], parts[1]
        else:
            if v.get("type") != "bind":
                continue
            src, dst = v["source"], v["target"]
        if src.startswith((".", "/")):
            out.append((os.path.normpath(os.path.join(base, src)), dst))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--compose", default="deploy/docker-compose.yml")
    ap.add_argument("--rules", default="deploy/helm/pipefy-exporter/files/rules.yml")
    args = ap.parse_args()
    base = os.path.dirname(os.path.abspath(args.compose))

    # 1. schema
    if not shutil.which("check-jsonschema"):
        err("check-jsonschema not found: pip install -r deploy/requirements-ci.txt")
    else:
        res = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.compose-spec", args.compose],
                             capture_output=True, text=True)
        if res.returncode != 0:
            err(f"Compose Specification schema: {res.stdout}{res.stderr}")
        else:
            ok("valid against the Compose Specification schema (check-jsonschema vendor.compose-spec)")

    with open(args.compose, encoding="utf-8") as f:
        raw = f.read()
    compose = yaml.safe_load(raw)
    services = compose.get("services", {})
    for name in ("pipefy-exporter", "prometheus", "alertmanager", "grafana"):
        if name not in services:
            err(f"service {name} missing")
    if errors:
        return 1

    # 2. services
    before = len(errors)
    for name, svc in services.items():
        for src, _ in binds(svc, base):
            if not os.path.exists(src):
                err(f"{name}: bind-mounted path {os.path.relpath(src)} does not exist")
        image = svc.get("image", "")
        if "build" not in svc and (":" not in image or image.endswith(":latest")):
            err(f"{name}: image {image!r} is not pinned to a version")
        if not svc.get("networks"):
            err(f"{name}: not on the compose user network")
    exp = services["pipefy-exporter"]
    build = exp.get("build", {})
    ctx = os.path.normpath(os.path.join(base, build.get("context", ".")))
    if not os.path.isfile(os.path.join(ctx, build.get("dockerfile", "Dockerfile"))):
        err("pipefy-exporter: build context has no Dockerfile")
    if "--demo" not in (exp.get("command") or []):
        err("pipefy-exporter: does not start in --demo mode by default")
    if not re.search(r"^\s*#\s*command:.*--config\.file=", raw, re.M):
        err("pipefy-exporter: no commented `command:` line switching to a real config")
    if not exp.get("read_only") or "ALL" not in (exp.get("cap_drop") or []):
        err("pipefy-exporter: should run read_only with cap_drop ALL")
    if len(errors) == before:
        ok("services: bind mounts exist, images pinned, exporter built from ./Dockerfile in --demo mode, "
           "read-only, all on the user network")

    # 3. Prometheus, files laid out as the container sees them
    before = len(errors)
    prom_binds = dict((dst, src) for src, dst in binds(services["prometheus"], base))
    cfg_path = next((a.split("=", 1)[1] for a in services["prometheus"].get("command", [])
                     if a.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
    if cfg_path not in prom_binds:
        err(f"prometheus: {cfg_path} is not mounted")
        return 1
    if os.path.realpath(prom_binds.get(next((d for d in prom_binds if "rules" in d), ""), "")) != os.path.realpath(args.rules):
        err(f"prometheus: does not mount the canonical rules file {args.rules}")
    with tempfile.TemporaryDirectory() as root:
        for dst, src in prom_binds.items():
            target = os.path.join(root, dst.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, target)
            else:
                shutil.copy(src, target)
        cfg_file = os.path.join(root, cfg_path.lstrip("/"))
        with open(cfg_file, encoding="utf-8") as f:
            prom = yaml.safe_load(f)
        rule_files = prom.get("rule_files", [])
        prom["rule_files"] = [os.path.join(root, r.lstrip("/")) for r in rule_files]
        with open(cfg_file, "w", encoding="utf-8") as f:
            yaml.safe_dump(prom, f)
        res = subprocess.run(["promtool", "check", "config", cfg_file], capture_output=True, text=True)
        if res.returncode != 0:
            err(f"prometheus: promtool check config failed:\n{res.stdout}{res.stderr}")
        elif "SUCCESS" not in res.stdout + res.stderr or "rules found" not in res.stdout + res.stderr:
            err(f"prometheus: promtool check config did not load the rules:\n{res.stdout}{res.stderr}")
    jobs = {j["job_name"]: j for j in prom.get("scrape_configs", [])}
    if "pipefy-exporter" not in jobs:
        err('prometheus: no scrape job named "pipefy-exporter" (PipefyExporterDown expects it)')
    else:
        targets = [t for sc in jobs["pipefy-exporter"].get("static_configs", []) for t in sc.get("targets", [])]
        if "pipefy-exporter:10151" not in targets:
            err(f"prometheus: pipefy-exporter job targets {targets}, expected pipefy-exporter:10151")
    am = [t for a in prom.get("alerting", {}).get("alertmanagers", [])
          for sc in a.get("static_configs", []) for t in sc.get("targets", [])]
    if not any(t.split(":")[0] in services for t in am):
        err(f"prometheus: Alertmanager targets {am} are not compose services")
    if len(errors) == before:
        ok("prometheus: promtool check config passes with the container's file layout; "
           "rules loaded from the canonical file; job pipefy-exporter scrapes pipefy-exporter:10151")

    # 4. Grafana provisioning
    before = len(errors)
    gbinds = dict((dst, src) for src, dst in binds(services["grafana"], base))
    prov = gbinds.get("/etc/grafana/provisioning")
    if not prov:
        err("grafana: /etc/grafana/provisioning is not mounted")
        return 1
    for sub in ("datasources", "dashboards"):
        files = [f for f in os.listdir(os.path.join(prov, sub)) if f.endswith((".yml", ".yaml"))]
        if not files:
            err(f"grafana: no provisioning file in {sub}/")
    for fname in os.listdir(os.path.join(prov, "dashboards")):
        with open(os.path.join(prov, "dashboards", fname), encoding="utf-8") as f:
            for p in yaml.safe_load(f).get("providers", []):
                path = p.get("options", {}).get("path")
                src = gbinds.get(path)
                if not src or not any(x.endswith(".json") for x in os.listdir(src)):
                    err(f"grafana: dashboard provider path {path} is not a mounted directory of dashboards")
    for fname in os.listdir(os.path.join(prov, "datasources")):
        with open(os.path.join(prov, "datasources", fname), encoding="utf-8") as f:
            for ds in yaml.safe_load(f).get("datasources", []):
                host = re.sub(r"^https?://([^:/]+).*", r"\1", ds.get("url", ""))
                if ds.get("type") == "prometheus" and host not in services:
                    err(f"grafana: datasource URL {ds.get('url')} is not a compose service")
    if len(errors) == before:
        ok("grafana: provisioning loads the mounted dashboards/ and a Prometheus datasource on the prometheus service")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
