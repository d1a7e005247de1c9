#!/usr/bin/env python3
"""Static checks of the Grafana dashboards in dashboards/ (standard library only).

For each of the four dashboards:
  - valid JSON, a stable uid, a title, tags, schemaVersion >= 41 (Grafana 12);
  - a `datasource` template variable of type datasource (Prometheus), and every datasource
    reference (panels, targets, variables) is "${datasource}": no hard-coded datasource uid
    (Grafana's own built-in annotation source excepted);
  - every panel has a description, a known type, a gridPos inside the 24-column grid, a
    unit when it shows numbers, unique id; every target has an expression and a unique refId;
  - template variables used in queries are defined by the dashboard or are Grafana
    built-ins ($__rate_interval, $__range, $__interval);
  - every metric name a query uses is one the exporter exposes, a recording rule of the
    rules file, or a standard Prometheus series (up);
  - the dashboard links to all the others;
  - a query that uses topk($k, ...) has a `$k` variable to go with it (and topk/bottomk
    always rank by $k), and no value mapping or noValue turns "no data" (null, NaN, empty)
    into a word such as "unlimited": a failing collector must not look unlimited. Only +Inf,
    the exporter's "no limit", may read as unlimited, through a value mapping keyed
    "Infinity" (what Grafana's value-to-text lookup sees for +Inf);
  - every dashboard has `job` and `instance` variables and every selector of every query
    filters on both; an `organization` variable lists names with the ids as values;
  - no query's result grows with the number of organizations or tokens: a small PromQL
    reader follows each query and requires such series to be ranked by topk/bottomk($k,
    ...) (tables: `X and on(organization_id) topk($k, ...)`), aggregated without the
    organization and token labels, or filtered on a single-valued $organization.

--emit-rules FILE writes every query, with the template variables replaced by sample
values, as a Prometheus rules file, so that `promtool check rules FILE` checks the PromQL
syntax offline with the Prometheus version CI has (2.42).

Exit status 0 when everything passes, 1 otherwise. Prints one line per dashboard and one
line per problem.
"""
import argparse
import json
import os
import re
import sys

EXPECTED = {
    "pipefy-overview.json": "pipefy-overview",
    "pipefy-organization.json": "pipefy-organization",
    "pipefy-exporter.json": "pipefy-exporter",
    "pipefy-api-usage.json": "pipefy-api-usage",
}
# Words that claim "no limit". They may only name +Inf (the exporter's "no limit"),
# through a value mapping on "Infinity" (how Grafana's value-to-text lookup sees +Inf);
# never "no data" (noValue, or a null/NaN/empty special mapping): a failing collector
# must not look unlimited.
UNLIMITED_WORDS = re.compile(r"unlimited|uncapped|no limit|no quota|infinite|∞", re.I)
MIN_SCHEMA_VERSION = 41
NUMERIC_PANELS = {"timeseries", "stat", "bargauge", "gauge", "table", "barchart", "histogram",
                  "heatmap", "state-timeline", "status-history", "piechart"}
KNOWN_PANELS = NUMERIC_PANELS | {"text", "row", "dashlist", "alertlist", "logs", "news"}
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval", "__range_s", "__range_ms",
                    "__interval_ms", "__from", "__to", "__dashboard", "__org", "__user"}
# Values that replace template variables when the queries are emitted for promtool.
SAMPLE_VALUES = {
    "organization": "2",
    "job": "pipefy-exporter",
    "instance": ".+",
    "__rate_interval": "1m",
    "__range": "1h",
    "__interval": "30s",
    "__range_s": "3600",
    "k": "10",
    "__interval_ms": "30000",
}

# Metric names the exporter exposes (the contract in README.md / docs).
EXPORTER_METRICS = {
    "pipefy_subscription_limit", "pipefy_subscription_used", "pipefy_organization_info",
    "pipefy_ai_credits_used", "pipefy_ai_credits_limit", "pipefy_ai_credits_free_used",
    "pipefy_ai_credits_free_limit", "pipefy_ai_credits_addon_enabled",
    "pipefy_ai_credits_used_by_feature", "pipefy_ai_credits_feature_enabled",
    "pipefy_api_calls_used", "pipefy_api_calls_limit", "pipefy_api_calls_used_by_token",
    "pipefy_api_calls_used_by_operation", "pipefy_automation_jobs_used",
    "pipefy_integration_tasks_used", "pipefy_integration_tasks_limit",
    "pipefy_integration_active_flows", "pipefy_tokens",
    "pipefy_token_unassigned_info", "pipefy_up", "pipefy_last_success_timestamp_seconds",
    "pipefy_token_attribution_deadline_timestamp_seconds",
    "pipefy_token_attribution_deadline_remaining_seconds",
    # The exporter's own metrics (pipefy_exporter_ prefix, so that they cannot be confused
    # with Pipefy's API usage).
    "pipefy_exporter_collector_interval_seconds", "pipefy_exporter_refreshes_total",
    "pipefy_exporter_api_requests_total", "pipefy_exporter_build_info",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
    "process_start_time_seconds",
}
EXPORTER_HISTOGRAMS = {"pipefy_exporter_refresh_duration_seconds",
                       "pipefy_exporter_api_request_duration_seconds"}
STANDARD_SERIES = {"up"}

VAR_RE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]")
METRIC_RE = re.compile(r"\b((?:pipefy|process)[a-z0-9_:]*|up)\b(?=\s*[{\[)\s]|$)")


def load_recording_rules(path):
    names = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\s*-?\s*record:\s*([A-Za-z_:][\w:]*)\s*$", line)
            if m:
                names.add(m.group(1))
    return names


def known_metrics(recording):
    known = set(EXPORTER_METRICS) | STANDARD_SERIES | recording
    for h in EXPORTER_HISTOGRAMS:
        known |= {h + "_bucket", h + "_sum", h + "_count"}
    return known


def iter_panels(panels):
    for p in panels:
        yield p
        # Collapsed rows hold their panels.
        yield from iter_panels(p.get("panels", []))


def walk(node, path="$"):
    """Yield (path, key, value) for every key of every dict in the tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def strip_strings(expr):
    """Remove PromQL string literals (label values) so that they are not read as metrics."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)


def metric_names(expr):
    bare = strip_strings(expr)
    # Drop `by (...)`/`without (...)`/`on (...)`/`ignoring (...)`/`group_*(...)` label lists.
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", bare)
    return set(METRIC_RE.findall(bare))


def is_backreference(name):
    """$1, ${1}: label_replace() capture references, not template variables (Grafana leaves
    a name it does not know as it is)."""
    return name.isdigit()


def substitute(expr):
    def repl(m):
        name = m.group(1) or m.group(2) or m.group(3)
        return SAMPLE_VALUES.get(name, m.group(0))
    return VAR_RE.sub(repl, expr)

# ------------------------------------------------------------------ growth of queries
# A small PromQL reader, just enough to tell whether a query's result grows with the
# number of organizations or tokens (dimensions "organization" and "token") or is bounded
# (by topk/bottomk, by an aggregation that drops those labels, or by a filter on a
# single-valued $organization). Not a validator: promtool checks the syntax.

# Metrics with an organization_id label; the ones that also have one series per token.
ORG_FREE_METRICS = {"pipefy_token_attribution_deadline_timestamp_seconds",
                    "pipefy_token_attribution_deadline_remaining_seconds",
                    "pipefy:token_attribution_deadline_remaining:days", "up"}
TOKEN_METRICS = {"pipefy_api_calls_used_by_token", "pipefy_token_unassigned_info",
                 "pipefy:api_calls_used_by_token:unassigned"}
DIMENSION_LABELS = {"organization": {"organization_id", "organization_name"},
                    "token": {"token_id", "token_name"}}
ALL_DIMENSIONS = frozenset(DIMENSION_LABELS)
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "quantile"}
BOUNDED_AGGREGATIONS = {"topk", "bottomk", "limitk"}
# Binary operators by precedence, lowest first (PromQL's own order).
PRECEDENCE = [{"or"}, {"and", "unless"}, {"==", "!=", "<=", ">=", "<", ">"}, {"+", "-"},
              {"*", "/", "%", "atan2"}, {"^"}]
TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>\$\w+|0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[Ii]nf\b|NaN\b)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>(){},=@])
""", re.X)


class PromQLReadError(ValueError):
    pass


def tokenize(expr):
    pos, out = 0, []
    while pos < len(expr):
        m = TOKEN_RE.match(expr, pos)
        if not m:
            raise PromQLReadError(f"cannot read {expr[pos:pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            out.append((kind, m.group()))
    return out


class Growth:
    """The dimensions a query's result grows with, read from its tokens.

    `single_org` tells whether `organization_id=~"$organization"` selects one organization
    (the dashboard's variable is neither multi-valued nor includes All)."""

    def __init__(self, expr, single_org):
        self.toks = tokenize(expr)
        self.i = 0
        self.single_org = single_org
        # Selectors without the $job and $instance filters.
        self.unfiltered = []

    def peek(self, k=0):
        return self.toks[self.i + k] if self.i + k < len(self.toks) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            raise PromQLReadError(f"expected {value!r}, found {tok[1]!r}")
        self.i += 1
        return tok

    def labels(self):
        self.take("(")
        names = set()
        while self.peek()[1] != ")":
            names.add(self.take()[1])
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return names

    def read(self):
        dims = self.binary(0)
        if self.peek()[0] is not None:
            raise PromQLReadError(f"unexpected {self.peek()[1]!r}")
        return dims

    # None: a scalar (a number, time(), scalar(...)); a frozenset: a vector's dimensions.
    def binary(self, level):
        if level == len(PRECEDENCE):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[1] in PRECEDENCE[level]:
            op = self.take()[1]
            if self.peek()[1] == "bool":
                self.take()
            on = ignoring = None
            if self.peek()[1] == "on":
                self.take()
                on = self.labels()
            elif self.peek()[1] == "ignoring":
                self.take()
                ignoring = self.labels()
            group_right = False
            if self.peek()[1] in ("group_left", "group_right"):
                group_right = self.take()[1] == "group_right"
                if self.peek()[1] == "(":
                    self.labels()
            right = self.binary(level + 1)
            left = combine(op, left, right, on, ignoring, group_right)
        return left

    def unary(self):
        if self.peek()[1] in ("-", "+"):
            self.take()
            return self.unary()
        dims = self.primary()
        while self.peek()[0] == "range" or self.peek()[1] in ("offset", "@"):
            if self.take()[1] in ("offset", "@"):
                if self.peek()[1] in ("-", "+"):
                    self.take()
                self.take()  # a duration, a timestamp or start()/end()
                if self.peek()[1] == "(":
                    self.take("(")
                    self.take(")")
        return dims

    def args(self):
        self.take("(")
        out = []
        while self.peek()[1] != ")":
            out.append(self.binary(0))
            if self.peek()[1] == ",":
                self.take(",")
        self.take(")")
        return out

    def primary(self):
        kind, value = self.peek()
        if kind == "num":
            self.take()
            return None
        if kind == "str":
            self.take()
            return None
        if value == "(":
            self.take("(")
            dims = self.binary(0)
            self.take(")")
            return dims
        if value == "{":
            return self.selector(None)
        if kind != "ident":
            raise PromQLReadError(f"unexpected {value!r}")
        self.take()
        if value in AGGREGATIONS | BOUNDED_AGGREGATIONS:
            by = without = None
            if self.peek()[1] in ("by", "without"):
                clause = self.take()[1]
                names = self.labels()
                by, without = (names, None) if clause == "by" else (None, names)
            args = self.args()
            if self.peek()[1] in ("by", "without"):
                clause = self.take()[1]
                names = self.labels()
                by, without = (names, None) if clause == "by" else (None, names)
            inner = args[-1] or frozenset()
            if value in BOUNDED_AGGREGATIONS:
                return frozenset()
            if by is not None:
                return frozenset(d for d in inner if DIMENSION_LABELS[d] & by)
            if without is not None:
                return frozenset(d for d in inner if not DIMENSION_LABELS[d] <= without)
            return frozenset()
        if self.peek()[1] == "(":  # a function: the dimensions of its vector argument
            args = self.args()
            if value in ("time", "scalar", "pi"):
                return None
            vectors = [a for a in args if a is not None]
            # vector(s), and days_in_month() & co. without argument: one series.
            return vectors[0] if vectors and value != "vector" else frozenset()
        return self.selector(value)

    def selector(self, name):
        matchers = {}
        if self.peek()[1] == "{":
            self.take("{")
            while self.peek()[1] != "}":
                label = self.take()[1]
                op = self.take()[1]
                val = self.take()[1][1:-1]
                matchers[label] = (op, val)
                if label == "__name__" and op == "=":
                    name = val
                if self.peek()[1] == ",":
                    self.take(",")
            self.take("}")
        if matchers.get("job") != ("=~", "$job") or matchers.get("instance") != ("=~", "$instance"):
            self.unfiltered.append(name)
        dims = set()
        if name not in ORG_FREE_METRICS and not (name or "").startswith(("pipefy_exporter_", "process_")):
            one_org = matchers.get("organization_id") in (("=~", "$organization"), ("=", "$organization"))
            if not (one_org and self.single_org):
                dims.add("organization")
            if name in TOKEN_METRICS:
                dims.add("token")
        return frozenset(dims)


def combine(op, left, right, on, ignoring, group_right):
    """Dimensions of `left op right`: a set operation keeps what either side lets through;
    a vector-vector match can only keep the series the other side matches on the labels
    it compares."""
    if left is None:
        return right
    if right is None:
        return left
    if op == "or":
        return left | right
    if op == "unless":
        return left
    if group_right:
        left, right = right, left
    if on is not None:
        compared = {d for d, labels in DIMENSION_LABELS.items() if labels & on}
    else:
        compared = {d for d, labels in DIMENSION_LABELS.items()
                    if not (ignoring and labels <= ignoring)}
    return frozenset(left & (right | (ALL_DIMENSIONS - compared)))


def growth(expr, single_org):
    """The dimensions (organization, token) the result of `expr` grows with, and the
    metrics it selects without the $job and $instance filters."""
    reader = Growth(expr, single_org)
    return reader.read(), reader.unfiltered


def check_dashboard(path, uid_expected, recording, errors, used_vars, emitted):
    name = os.path.basename(path)

    def err(msg):
        errors.append(f"{name}: {msg}")

    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        err(f"cannot be read as JSON: {e}")
        return None

    if d.get("uid") != uid_expected:
        err(f"uid is {d.get('uid')!r}, expected {uid_expected!r}")
    if not d.get("title"):
        err("has no title")
    if not d.get("tags"):
        err("has no tags")
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < MIN_SCHEMA_VERSION:
        err(f"schemaVersion {d.get('schemaVersion')!r} < {MIN_SCHEMA_VERSION}")
    if d.get("id") not in (None,):
        err("has a numeric `id` (leave it null so that Grafana assigns one)")

    variables = d.get("templating", {}).get("list", [])
    var_names = {v.get("name") for v in variables}
    for needed in ("job", "instance"):
        if needed not in var_names:
            err(f"has no `{needed}` template variable")
    org_vars = [v for v in variables if v.get("name") == "organization"]
    # A filter on $organization bounds a query only when it selects one organization.
    single_org = bool(org_vars) and not org_vars[0].get("multi") and not org_vars[0].get("includeAll")
    for v in org_vars:
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        regex = v.get("regex") or ""
        if not ("query_result(" in (q or "") and "(?<value>" in regex and "(?<text>" in regex):
            err("variable 'organization' must list names with ids as values "
                "(query_result(...) with a regex capturing (?<value>...) and (?<text>...))")
    ds_vars = [v for v in variables if v.get("name") == "datasource"]
    if not ds_vars:
        err("has no `datasource` template variable")
    elif ds_vars[0].get("type") != "datasource" or ds_vars[0].get("query") != "prometheus":
        err("the `datasource` variable must be of type datasource with query prometheus")

    # No hard-coded datasource anywhere.
    for where, key, value in walk(d):
        if key != "datasource":
            continue
        if isinstance(value, dict):
            uid = value.get("uid")
            if value.get("type") == "grafana" and uid in ("-- Grafana --", "grafana"):
                continue  # Grafana's built-in annotations.
            if uid not in ("${datasource}", "$datasource"):
                err(f"{where}: datasource uid {uid!r} is hard-coded (use ${{datasource}})")
        elif isinstance(value, str) and value not in ("${datasource}", "$datasource"):
            err(f"{where}: datasource {value!r} is hard-coded (use ${{datasource}})")

    for v in variables:
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            if not q:
                err(f"variable {v.get('name')!r} has no query")
            else:
                for m in VAR_RE.finditer(q):
                    vn = m.group(1) or m.group(2) or m.group(3)
                    if vn not in var_names and vn not in GRAFANA_BUILTINS:
                        err(f"variable {v.get('name')!r} uses undefined ${vn}")
        if not v.get("description") and v.get("hide", 0) != 2:
            err(f"variable {v.get('name')!r} has no description")

    links = " ".join(l.get("url", "") for l in d.get("links", []))
    for other in EXPECTED.values():
        if other != uid_expected and f"/d/{other}" not in links:
            err(f"does not link to dashboard {other}")

    ids = set()
    panels = list(iter_panels(d.get("panels", [])))
    if not panels:
        err("has no panels")
    for p in panels:
        ptype = p.get("type")
        title = p.get("title") or f"panel {p.get('id')}"
        pid = p.get("id")
        if pid in ids:
            err(f"panel id {pid} is used twice")
        ids.add(pid)
        if ptype not in KNOWN_PANELS:
            err(f"{title!r}: unknown panel type {ptype!r}")
        if ptype == "row":
            continue
        if not (p.get("description") or "").strip():
            err(f"{title!r}: no description")
        gp = p.get("gridPos") or {}
        if not all(isinstance(gp.get(k), int) for k in ("x", "y", "w", "h")):
            err(f"{title!r}: gridPos incomplete")
        elif gp["x"] < 0 or gp["w"] <= 0 or gp["x"] + gp["w"] > 24:
            err(f"{title!r}: gridPos outside the 24-column grid")
        if ptype in NUMERIC_PANELS:
            unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
            if not unit:
                err(f"{title!r}: no unit (fieldConfig.defaults.unit)")
        for where, key, value in walk(p.get("fieldConfig", {})):
            if key == "noValue" and isinstance(value, str) and UNLIMITED_WORDS.search(value):
                err(f"{title!r}: noValue {value!r}: show no data as such (only +Inf is unlimited)")
            if key not in ("mappings", "value") or not isinstance(value, list):
                continue
            for mapping in value:
                if not isinstance(mapping, dict) or "type" not in mapping:
                    continue
                options = mapping.get("options") or {}
                if mapping["type"] == "special" and options.get("match") in ("null", "nan", "null+nan", "empty"):
                    err(f"{title!r}: value mapping of no data ({options.get('match')}) to "
                        f"{(options.get('result') or {}).get('text')!r}: show no data as such")
                    continue
                results = options.items() if mapping["type"] == "value" else [(None, options.get("result"))]
                for key_, result in results:
                    text = (result or {}).get("text") or ""
                    if UNLIMITED_WORDS.search(text) and not (mapping["type"] == "value" and key_ == "Infinity"):
                        err(f"{title!r}: {mapping['type']} mapping to {text!r}: only +Inf may read as "
                            f"unlimited, through a value mapping on \"Infinity\"")
        targets = p.get("targets", [])
        if ptype in NUMERIC_PANELS and not targets:
            err(f"{title!r}: no query")
        refs = set()
        for t in targets:
            ref = t.get("refId")
            if ref in refs:
                err(f"{title!r}: refId {ref} is used twice")
            refs.add(ref)
            expr = (t.get("expr") or "").strip()
            if not expr:
                err(f"{title!r} {ref}: empty expression")
                continue
            if re.search(r"\b(?:topk|bottomk)\s*\(\s*\$", expr) and "k" not in var_names:
                err(f"{title!r} {ref}: topk by a variable without a `k` variable")
            if re.search(r"\b(?:topk|bottomk)\s*\((?!\s*\$k\b)", expr):
                err(f"{title!r} {ref}: topk/bottomk with a fixed number (use the $k variable)")
            for m in VAR_RE.finditer(expr):
                vn = m.group(1) or m.group(2) or m.group(3)
                if is_backreference(vn):
                    continue
                used_vars.add(vn)
                if vn not in var_names and vn not in GRAFANA_BUILTINS:
                    err(f"{title!r} {ref}: uses undefined variable ${vn}")
            for metric in metric_names(expr):
                if metric not in known_metrics(recording):
                    err(f"{title!r} {ref}: unknown metric {metric!r}")
            try:
                dims, unfiltered = growth(expr, single_org)
            except PromQLReadError as e:
                err(f"{title!r} {ref}: cannot read the query ({e}): {expr}")
            else:
                if dims:
                    err(f"{title!r} {ref}: the result grows with the number of "
                        f"{' and '.join(sorted(d + 's' for d in dims))}: rank it with topk($k, ...) "
                        f"(tables: `and on(...) topk(...)`) or aggregate those labels away")
                for metric in sorted(set(unfiltered)):
                    err(f"{title!r} {ref}: {metric} is selected without "
                        f"job=~\"$job\", instance=~\"$instance\"")
            emitted.append((uid_expected, pid, ref, title, substitute(expr)))
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dashboards", default="dashboards")
    ap.add_argument("--rules", default="deploy/prometheus/rules.yml",
                    help="rules file whose recording rules the dashboards may use")
    ap.add_argument("--emit-rules", metavar="FILE",
                    help="write every query as a recording rule, for `promtool check rules`")
    args = ap.parse_args()

    errors, used_vars, emitted = [], set(), []
    recording = load_recording_rules(args.rules)
    if not recording:
        errors.append(f"{args.rules}: no recording rules found")

    found = sorted(f for f in os.listdir(args.dashboards) if f.endswith(".json"))
    for f in found:
        if f not in EXPECTED:
            errors.append(f"{f}: unexpected dashboard file (expected {', '.join(EXPECTED)})")
    uids = {}
    for fname, uid in EXPECTED.items():
        path = os.path.join(args.dashboards, fname)
        if not os.path.exists(path):
            errors.append(f"{fname}: missing")
            continue
        before = len(errors)
        d = check_dashboard(path, uid, recording, errors, used_vars, emitted)
        if d is not None:
            uids.setdefault(d.get("uid"), []).append(fname)
            n = sum(1 for p in iter_panels(d.get("panels", [])) if p.get("type") != "row")
            status = "ok" if len(errors) == before else "FAILED"
            print(f"  {fname}: {status} (uid {d.get('uid')}, {n} panels, "
                  f"{sum(1 for e in emitted if e[0] == uid)} queries)")
    for uid, files in uids.items():
        if len(files) > 1:
            errors.append(f"uid {uid!r} is used by {', '.join(files)}")

    print("  template variables used in queries: " + ", ".join(sorted("$" + v for v in used_vars)))

    if args.emit_rules:
        with open(args.emit_rules, "w", encoding="utf-8") as f:
            f.write("# Generated by scripts/check-dashboards.py: every dashboard query as a rule.\n")
            f.write("groups:\n  - name: dashboard-queries\n    rules:\n")
            for uid, pid, ref, title, expr in emitted:
                f.write(f"      # {uid} / {title} / {ref}\n")
                f.write(f"      - record: dashboard:{uid.replace('-', '_')}:panel{pid}_{ref}\n")
                f.write("        expr: " + json.dumps(expr) + "\n")

    for e in errors:
        print(f"  ERROR {e}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
