#!/usr/bin/env python3
"""Offline checks of the Helm chart deploy/helm/pipefy-exporter.

Uses helm-python-sdk (the Helm v4 Go SDK behind a C ABI: no helm binary, no cluster),
kubernetes-validate (Kubernetes OpenAPI schemas, --strict) and promtool:

  1. `helm lint --strict` with the default values (plus the existingSecret they cannot do
     without: with no credential at all the chart refuses to render, and says how to
     give one) and with each ci/*-values.yaml;
  2. values.schema.json accepts those values and rejects bad ones, including a misspelt
     key of the exporter's own configuration (values.config);
  3. `helm template` of each values file; every rendered core object validates against
     the Kubernetes schemas of the oldest supported version (Chart.yaml kubeVersion) and of
     the newest one kubernetes-validate knows, in strict mode (unknown fields are errors);
  4. the workload (a Deployment, or a StatefulSet of one pod per shard with
     sharding.totalShards > 1, --shard from the pod-index label): non-root, read-only root
     filesystem, no privilege escalation, ALL capabilities dropped, seccomp RuntimeDefault,
     probes on /-/healthy and /-/ready (HTTPS with webConfig TLS; with basic auth, an
     Authorization header or tcpSocket probes), --web.config.file and its Secret volume
     exactly when webConfig.existingSecret is set, the Service and ServiceMonitor select
     its pods and its named port; the ConfigMap is values.config with exactly one
     credential kind, the one of auth.type; the ServiceMonitor's scheme, tlsConfig and basicAuth
     follow webConfig, and a web config without them fails to render with a message;
  5. the PrometheusRule's spec is files/rules.yml, unchanged but for the runbook links
     when prometheusRule.runbookBaseURL is set, and passes `promtool check rules` (the CRD
     has no schema in kubernetes-validate, so this is its validation); the ServiceMonitor
     sets job="pipefy-exporter", which PipefyExporterDown expects;
  6. NOTES.txt warns when the token-attribution deadline is unset (the deadline alerts
     could never fire), and only then.
Exit status 0 when everything passes, 1 otherwise.
"""
import argparse
import copy
import glob
import os
import subprocess
import sys
import tempfile

import yaml

try:
    import helm_python as helm
except ImportError:
    print("  ERROR helm-python-sdk is not installed: pip install -r deploy/requirements-ci.txt")
    sys.exit(1)
try:
    import kubernetes_validate
    from kubernetes_validate import utils as kv_utils
except ImportError:
    print("  ERROR kubernetes-validate is not installed: pip install -r deploy/requirements-ci.txt")
    sys.exit(1)

RELEASE, NAMESPACE = "pipefy-exporter", "monitoring"
CORE_KINDS = {"Deployment", "StatefulSet", "Service", "ConfigMap", "ServiceAccount", "Secret"}
WEB_DIR = "/etc/pipefy-exporter-web"
DEADLINE_WARNING = "WARNING: config.collectors.token_attribution.deadline is not set"
errors = []


def err(msg):
    errors.append(msg)
    print(f"  ERROR {msg}")


def ok(msg):
    print(f"  ok {msg}")


def load_values(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def kube_versions(chart_dir):
    with open(os.path.join(chart_dir, "Chart.yaml"), encoding="utf-8") as f:
        kube = yaml.safe_load(f).get("kubeVersion", "")
    versions = kv_utils.all_versions()
    oldest = versions[0]
    if kube.startswith(">="):
        want = kube[2:].split("-")[0]
        mm = ".".join(want.split(".")[:2])
        matching = [v for v in versions if v.startswith(mm + ".")]
        if not matching:
            err(f"kubernetes-validate has no schema for Kubernetes {mm} (Chart.yaml kubeVersion)")
        else:
            oldest = matching[0]
    return sorted({oldest, kv_utils.latest_version()}, key=lambda v: [int(x) for x in v.split(".")])


def expected_probe_handler(path, web):
    """The probe handler the chart must render for `path` under these webConfig values."""
    on = bool(web.get("existingSecret"))
    auth = on and web["basicAuth"]["enabled"]
    if auth and not web["basicAuth"].get("probeAuthorization"):
        return {"tcpSocket": {"port": "http"}}
    http = {"path": path, "port": "http"}
    if on and web["tls"]["enabled"]:
        http["scheme"] = "HTTPS"
    if auth:
        http["httpHeaders"] = [{"name": "Authorization", "value": web["basicAuth"]["probeAuthorization"]}]
    return {"httpGet": http}


def check_workload(label, dep, values):
    """Kind, replicas, rollout and shard arguments of the Deployment / StatefulSet."""
    total = values["sharding"]["totalShards"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    args, env = c.get("args", []), {e["name"]: e for e in c.get("env", [])}
    if total > 1:
        if dep["kind"] != "StatefulSet":
            err(f"{label}: sharding.totalShards={total} but a {dep['kind']}")
            return
        spec = dep["spec"]
        if spec.get("replicas") != total or spec.get("podManagementPolicy") != "Parallel":
            err(f"{label}: StatefulSet must run {total} replicas in parallel, got {spec.get('replicas')} {spec.get('podManagementPolicy')}")
        if spec.get("serviceName") != dep["metadata"]["name"]:
            err(f"{label}: StatefulSet serviceName is not the chart's Service")
        want = ["--shard=$(PIPEFY_EXPORTER_SHARD)", f"--total-shards={total}"]
        if [a for a in args if a.startswith(("--shard=", "--total-shards="))] != want:
            err(f"{label}: StatefulSet args must include {want}, got {args}")
        ref = env.get("PIPEFY_EXPORTER_SHARD", {}).get("valueFrom", {}).get("fieldRef", {})
        if ref.get("fieldPath") != "metadata.labels['apps.kubernetes.io/pod-index']":
            err(f"{label}: PIPEFY_EXPORTER_SHARD must come from the pod-index label, got {ref}")
    else:
        if dep["kind"] != "Deployment" or dep["spec"].get("strategy", {}).get("type") != "Recreate":
            err(f"{label}: not sharded: expected a Deployment with the Recreate strategy")
        if any(a.startswith(("--shard", "--total-shards")) for a in args) or "PIPEFY_EXPORTER_SHARD" in env:
            err(f"{label}: not sharded, but shard arguments or env rendered")


def check_web_config(label, dep, values):
    """--web.config.file, its volume and the probes, on or off with webConfig."""
    web = values["webConfig"]
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    args = c.get("args", [])
    flags = [a for a in args if a.startswith("--web.config.file")]
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    if web.get("existingSecret"):
        if flags != [f"--web.config.file={WEB_DIR}/{web['key']}"]:
            err(f"{label}: expected --web.config.file={WEB_DIR}/{web['key']}, got {flags}")
        if vols.get("web-config", {}).get("secret", {}).get("secretName") != web["existingSecret"]:
            err(f"{label}: webConfig.existingSecret {web['existingSecret']} is not a volume")
        m = mounts.get("web-config", {})
        if m.get("mountPath") != WEB_DIR or m.get("readOnly") is not True:
            err(f"{label}: the web config Secret must be mounted read-only at {WEB_DIR}, got {m}")
    elif flags or "web-config" in vols or "web-config" in mounts:
        err(f"{label}: no webConfig.existingSecret, but --web.config.file or its volume rendered")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        got = c.get(probe, {})
        handler = {k: v for k, v in got.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}
        want = expected_probe_handler(path, web)
        if handler != want:
            err(f"{label}: {probe} is {handler}, expected {want}")
        timing = {k: v for k, v in values[probe].items() if k != "httpGet"}
        if {k: v for k, v in got.items() if k not in handler} != timing:
            err(f"{label}: {probe} lost its timings {timing}")


def check_service_monitor_auth(label, ep, values):
    web = values["webConfig"]
    on = bool(web.get("existingSecret"))
    sm = values["serviceMonitor"]
    if on and web["tls"]["enabled"]:
        if ep.get("scheme") != "https" or ep.get("tlsConfig") != sm["tlsConfig"]:
            err(f"{label}: ServiceMonitor must scrape https with serviceMonitor.tlsConfig, got {ep.get('scheme')} {ep.get('tlsConfig')}")
    elif "scheme" in ep or "tlsConfig" in ep:
        err(f"{label}: no TLS, but the ServiceMonitor sets scheme/tlsConfig")
    if on and web["basicAuth"]["enabled"]:
        if ep.get("basicAuth") != sm["basicAuth"]:
            err(f"{label}: ServiceMonitor basicAuth is {ep.get('basicAuth')}, expected serviceMonitor.basicAuth")
    elif "basicAuth" in ep:
        err(f"{label}: no basic auth, but the ServiceMonitor sets basicAuth")


def check_notes(label, notes, values):
    cfg = values.get("config") or {}
    attribution = (cfg.get("collectors") or {}).get("token_attribution")
    disabled = attribution is False or (isinstance(attribution, dict) and attribution.get("enabled") is False)
    deadline = attribution.get("deadline") if isinstance(attribution, dict) else None
    want = not values.get("demo") and not disabled and not deadline
    if (DEADLINE_WARNING in notes) != want:
        err(f"{label}: NOTES.txt {'lacks' if want else 'has'} the unset-deadline warning")


def check_deployment(label, docs, values):
    dep = next((d for d in docs if d["kind"] in ("Deployment", "StatefulSet")), None)
    svc = next((d for d in docs if d["kind"] == "Service"), None)
    if not dep or not svc:
        err(f"{label}: Deployment/StatefulSet or Service missing")
        return
    check_workload(label, dep, values)
    check_web_config(label, dep, values)
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    c = spec["containers"][0]
    sc, psc = c.get("securityContext", {}), spec.get("securityContext", {})
    checks = {
        "runAsNonRoot": psc.get("runAsNonRoot") is True or sc.get("runAsNonRoot") is True,
        "readOnlyRootFilesystem": sc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation=false": sc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": "ALL" in (sc.get("capabilities", {}).get("drop") or []),
        "seccomp RuntimeDefault": (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
        "no service-account token": spec.get("automountServiceAccountToken") is False,
    }
    for name, good in checks.items():
        if not good:
            err(f"{label}: Deployment: {name}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    if ports.get("http") != values.get("service", {}).get("port", 10151):
        err(f"{label}: container port `http` is {ports.get('http')}, expected the service port")
    args = c.get("args", [])
    if values.get("demo"):
        if "--demo" not in args:
            err(f"{label}: demo=true but no --demo argument")
    else:
        if "--config.file=/etc/pipefy-exporter/pipefy-exporter.yml" not in args:
            err(f"{label}: no --config.file argument")
        cm = next((d for d in docs if d["kind"] == "ConfigMap"), None)
        if not cm or "pipefy-exporter.yml" not in cm.get("data", {}):
            err(f"{label}: ConfigMap with pipefy-exporter.yml missing")
        else:
            cfg = yaml.safe_load(cm["data"]["pipefy-exporter.yml"])
            check_credentials(label, cfg, values)
        if values.get("existingSecret"):
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            sec = vols.get("pipefy-credentials", {}).get("secret", {})
            if sec.get("secretName") != values["existingSecret"]:
                err(f"{label}: existingSecret is not mounted")
    labels = pod["metadata"]["labels"]
    if dep["spec"]["selector"]["matchLabels"].items() - labels.items():
        err(f"{label}: Deployment selector does not match its pod labels")
    if svc["spec"]["selector"].items() - labels.items():
        err(f"{label}: Service selector does not match the pod labels")
    if svc["spec"]["ports"][0].get("targetPort") not in ("http", ports.get("http")):
        err(f"{label}: Service targetPort is not the container's http port")

    sm = next((d for d in docs if d["kind"] == "ServiceMonitor"), None)
    if sm:
        if sm["apiVersion"] != "monitoring.coreos.com/v1":
            err(f"{label}: ServiceMonitor apiVersion {sm['apiVersion']}")
        if sm["spec"]["selector"]["matchLabels"].items() - svc["metadata"]["labels"].items():
            err(f"{label}: ServiceMonitor does not select the Service")
        ep = sm["spec"]["endpoints"][0]
        if ep.get("port") != svc["spec"]["ports"][0]["name"] or ep.get("path") != "/metrics":
            err(f"{label}: ServiceMonitor endpoint is not the Service's http port /metrics")
        check_service_monitor_auth(label, ep, values)
        job = [r for r in ep.get("relabelings", []) if r.get("targetLabel") == "job"]
        if not job or job[0].get("replacement") != "pipefy-exporter":
            err(f"{label}: ServiceMonitor does not set job=\"pipefy-exporter\" (PipefyExporterDown needs it)")
    elif values.get("serviceMonitor", {}).get("enabled"):
        err(f"{label}: serviceMonitor.enabled but no ServiceMonitor rendered")


def expected_config(values):
    """values.config with the credentials the chart writes from values.auth."""
    cfg = copy.deepcopy(values.get("config") or {})
    auth = values.get("auth") or {}
    kind = auth.get("type")
    if kind == "token":
        cfg.setdefault("pipefy", {})["auth"] = {"token_file": f"/run/secrets/pipefy/{auth['tokenKey']}"}
    elif kind == "service_account":
        sa = auth["serviceAccount"]
        cfg.setdefault("pipefy", {})["auth"] = {"service_account": {
            "client_id": sa["clientId"],
            "client_secret_file": f"/run/secrets/pipefy/{sa['clientSecretKey']}",
            "token_endpoint": sa["tokenEndpoint"]}}
    return cfg


def check_credentials(label, cfg, values):
    """The rendered config has exactly one credential kind per account: the one of
    auth.type, or the accounts written in config."""
    if cfg != expected_config(values):
        err(f"{label}: ConfigMap content differs from values.config + auth: {cfg}")
    accounts = cfg.get("accounts") or [{"auth": (cfg.get("pipefy") or {}).get("auth") or {}}]
    for account in accounts:
        kinds = sorted(k for k in ("token_file", "service_account") if k in (account.get("auth") or {}))
        if len(kinds) != 1:
            err(f"{label}: a credential has {kinds or 'none'} of token_file / service_account, not exactly one")
    kind = {"token": "token_file", "service_account": "service_account"}.get((values.get("auth") or {}).get("type"))
    if kind and kind not in ((cfg.get("pipefy") or {}).get("auth") or {}):
        err(f"{label}: auth.type asks for {kind} but the ConfigMap has {cfg.get('pipefy')}")


def runbook_urls(spec):
    return [r["annotations"]["runbook_url"] for g in spec["groups"] for r in g["rules"] if "alert" in r]


def check_prometheus_rule(label, docs, rules_file, tmp, values, home):
    pr = next((d for d in docs if d["kind"] == "PrometheusRule"), None)
    if not pr:
        return False
    if pr["apiVersion"] != "monitoring.coreos.com/v1":
        err(f"{label}: PrometheusRule apiVersion {pr['apiVersion']}")
    with open(rules_file, encoding="utf-8") as f:
        text = f.read()
    default_base = f"{home}/blob/main/docs/runbook.md#"
    base = values["prometheusRule"].get("runbookBaseURL") or ""
    expected_base = f"{base}#" if base else default_base
    # The file with its runbook links moved, and nothing else changed.
    canonical = yaml.safe_load(text.replace(default_base, expected_base))
    if pr["spec"] != canonical:
        err(f"{label}: PrometheusRule spec differs from {rules_file} (runbook base {expected_base})")
    urls = runbook_urls(pr["spec"])
    if not urls or any(not u.startswith(expected_base) for u in urls):
        err(f"{label}: runbook_url not all under {expected_base}: {urls}")
    if base and runbook_urls(yaml.safe_load(text)) == urls:
        err(f"{label}: prometheusRule.runbookBaseURL changed no runbook_url")
    out = os.path.join(tmp, f"{label}-prometheusrule-spec.yml")
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(pr["spec"], f, sort_keys=False)
    res = subprocess.run(["promtool", "check", "rules", out], capture_output=True, text=True)
    if res.returncode != 0:
        err(f"{label}: promtool rejects the rendered PrometheusRule:\n{res.stdout}{res.stderr}")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chart", default="deploy/helm/pipefy-exporter")
    args = ap.parse_args()
    chart = args.chart
    rules_file = os.path.join(chart, "files", "rules.yml")
    print(f"  helm-python-sdk {helm.__version__} (helm-c-sdk {helm.helm_c_version()}, Helm SDK {helm.helm_sdk_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else kv_utils.__version__}")

    # The defaults need a credential; without one the chart fails (checked below).
    value_sets = [("defaults", {"existingSecret": "pipefy-exporter"})]
    for path in sorted(glob.glob(os.path.join(chart, "ci", "*-values.yaml"))):
        value_sets.append((os.path.basename(path), load_values(path)))
    if len(value_sets) < 2:
        err(f"no {chart}/ci/*-values.yaml files")

    # 1. lint
    for label, values in value_sets:
        report = helm.lint(chart, values or None, strict=True, namespace=NAMESPACE)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        problems += [{"error": e} for e in report.get("errors", [])]
        infos = [m["error"] for m in report.get("messages", []) if m.get("severity", 0) < 2]
        if problems:
            for p in problems:
                err(f"helm lint ({label}): {p.get('path', '')} {p['error']}")
        else:
            ok(f"helm lint --strict ({label})" + (f"; info: {'; '.join(infos)}" if infos else ""))

    kube = kube_versions(chart)
    with open(os.path.join(chart, "Chart.yaml"), encoding="utf-8") as f:
        meta = yaml.safe_load(f)
    chart_name, home = meta["name"], meta["home"].rstrip("/")
    with helm.Chart.load(chart) as ch, tempfile.TemporaryDirectory() as tmp:
        # 2. schema
        for label, values in value_sets:
            try:
                ch.validate_schema(values or None)
            except helm.HelmError as e:
                err(f"values.schema.json rejects {label}: {e}")
        bad_values = [("unknown key", {"replicas": 2}),
                      ("wrong type", {"service": {"port": "http"}}),
                      ("root filesystem writable", {"securityContext": {"readOnlyRootFilesystem": False, "allowPrivilegeEscalation": False}}),
                      ("bad log format", {"log": {"format": "xml"}}),
                      # The exporter's own configuration: what would crash-loop the pod.
                      ("config.organisations", {"config": {"organisations": ["2"]}}),
                      ("unknown collector key", {"config": {"collectors": {"api_usage": {"by_tokens": True}}}}),
                      ("duration without unit", {"config": {"refresh_interval": "5"}}),
                      ("organization id 2.5", {"config": {"organizations": [2.5]}}),
                      ("both credentials", {"auth": {"type": ""}, "config": {"pipefy": {"auth": {"token_file": "/a", "service_account": {"client_id": "a", "token_endpoint": "https://a/t"}}}}}),
                      ("unknown auth type", {"auth": {"type": "password"}}),
                      ("service account without client id", {"auth": {"type": "service_account", "serviceAccount": {"tokenEndpoint": "https://a/t"}}})]
        for bad_label, bad in bad_values:
            try:
                ch.validate_schema(bad)
                err(f"values.schema.json accepts bad values ({bad_label}): {bad}")
            except helm.HelmError:
                pass
        if not any(e.startswith("values.schema") for e in errors):
            ok(f"values.schema.json accepts {len(value_sets)} value sets, rejects {len(bad_values)} bad ones")

        # No credential at all: the chart refuses, saying how to give one, rather than
        # render a pod that crash-loops. A credential in extraEnv or demo=true will do.
        try:
            ch.render(None, name=RELEASE, namespace=NAMESPACE, is_install=True)
            err("helm template renders with no credential (no existingSecret, no demo)")
        except helm.HelmError as e:
            want = "existingSecret is required: the name of a Secret holding the Pipefy credential"
            if want not in str(e) or "--set demo=true" not in str(e):
                err(f"helm template without a credential fails, but does not say how to give one: {e}")
            else:
                ok("helm template without a credential fails: existingSecret is required (or demo=true)")
        env_token = {"extraEnv": [{"name": "PIPEFY_TOKEN", "valueFrom": {"secretKeyRef": {"name": "pipefy", "key": "token"}}}]}
        try:
            ch.render(env_token, name=RELEASE, namespace=NAMESPACE, is_install=True)
        except helm.HelmError as e:
            err(f"helm template with PIPEFY_TOKEN in extraEnv fails: {e}")

        # Credentials written in config and by auth.type at once: the chart refuses.
        try:
            ch.render({"existingSecret": "pipefy-exporter", "config": {"pipefy": {"auth": {"token_file": "/a"}}}}, name=RELEASE, namespace=NAMESPACE, is_install=True)
            err("helm template accepts auth.type=token together with config.pipefy.auth")
        except helm.HelmError as e:
            if "auth.type is set and config has its own credentials" not in str(e):
                err(f"helm template fails config.pipefy.auth with auth.type=token, but says: {e}")

        # 3-5. render and validate
        rule_rendered = False
        for label, values in value_sets:
            try:
                manifests = ch.render(values or None, name=RELEASE, namespace=NAMESPACE, is_install=True)
            except helm.HelmError as e:
                err(f"helm template ({label}): {e}")
                continue
            docs = []
            for name, text in sorted(manifests.items()):
                if not name.endswith((".yaml", ".yml")):
                    continue
                for d in yaml.safe_load_all(text):
                    if d:
                        docs.append(d)
            kinds = sorted(d["kind"] for d in docs)
            before = len(errors)
            for d in docs:
                if d["kind"] not in CORE_KINDS:
                    continue
                for v in kube:
                    try:
                        kv_utils.validate(d, v, strict=True)
                    except kv_utils.ValidationError as e:
                        err(f"{label}: {d['kind']}/{d['metadata']['name']} invalid for Kubernetes {v}: {e.message} at {list(e.path)}")
                    except kv_utils.SchemaNotFoundError as e:
                        err(f"{label}: {e.message}")
            merged = ch.merge_values(values or None)
            check_deployment(label, docs, merged)
            check_notes(label, manifests.get(f"{chart_name}/templates/NOTES.txt", ""), merged)
            rule_rendered |= check_prometheus_rule(label, docs, rules_file, tmp, merged, home)
            if len(errors) == before:
                ok(f"helm template ({label}): {', '.join(kinds)}; valid for Kubernetes {' and '.join(kube)} (strict)")
        # A web config the ServiceMonitor cannot follow is refused, with the fix.
        for bad_label, bad, message in [
            ("TLS without serviceMonitor.tlsConfig",
             {"existingSecret": "pipefy-exporter", "webConfig": {"existingSecret": "w", "tls": {"enabled": True}}, "serviceMonitor": {"enabled": True}},
             "set serviceMonitor.tlsConfig"),
            ("basic auth without serviceMonitor.basicAuth",
             {"existingSecret": "pipefy-exporter", "webConfig": {"existingSecret": "w", "basicAuth": {"enabled": True}}, "serviceMonitor": {"enabled": True}},
             "set serviceMonitor.basicAuth"),
        ]:
            try:
                ch.render(bad, name=RELEASE, namespace=NAMESPACE, is_install=True)
                err(f"helm template renders {bad_label}")
            except helm.HelmError as e:
                if message not in str(e):
                    err(f"helm template ({bad_label}): the error does not say {message!r}: {e}")
                else:
                    ok(f"helm template refuses {bad_label}: {message}")
        if not rule_rendered:
            err("no value set renders the PrometheusRule: enable prometheusRule in a ci/*-values.yaml")
        elif not any("PrometheusRule" in e for e in errors):
            ok(f"PrometheusRule spec == {rules_file} and passes promtool check rules")

    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
