//! The configuration file: defaults, every key's validation, and errors that name the
//! file, the line and the key in the user's terms.

use super::*;

fn parse(yaml: &str) -> Result<Config, ConfigError> {
    parse_env(yaml, &[])
}

fn parse_env(yaml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_yaml(yaml, Path::new("test.yml"), &move |name| {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
}

fn message(result: Result<Config, ConfigError>) -> String {
    result.expect_err("expected an error").to_string()
}

#[test]
fn defaults_with_a_token_from_the_environment() {
    let config = parse_env("organizations: [2, \"300\"]", &[(ENV_TOKEN, "pat-123\n")]).unwrap();
    assert_eq!(config.endpoint, DEFAULT_ENDPOINT);
    assert_eq!(config.timeout, Duration::from_secs(30));
    assert_eq!(config.request_limits.max_fields, 500);
    assert_eq!(config.request_limits.max_complexity, 50_000);
    assert_eq!(config.request_limits.page_size, 50);
    assert_eq!(config.max_concurrent_requests, 4);
    assert_eq!(config.max_tries, 3);
    assert_eq!(config.retry_delay, Duration::from_millis(250));
    assert_eq!(config.backoff_base, Duration::from_secs(30));
    assert_eq!(config.backoff_max, Duration::from_secs(3600));
    assert_eq!(config.accounts.len(), 1);
    assert_eq!(
        config.accounts[0].credential,
        Credential::Token {
            token: Secret::new("pat-123"),
            file: None
        }
    );
    assert_eq!(
        config.accounts[0].organizations,
        Some(vec!["2".to_string(), "300".to_string()])
    );
    // No deadline: no deadline metrics.
    let info = crate::exposition::ExpositionInfo::new(&config.collectors, config.shard);
    let body = crate::exposition::render(
        &Default::default(),
        &crate::self_metrics::SelfMetrics::default(),
        &info,
        std::time::SystemTime::now(),
        crate::encoding::Format::Text,
    );
    assert!(body.contains(
        "pipefy_exporter_collector_interval_seconds{collector=\"token_attribution\"} 3600"
    ));
    assert!(!body.contains("pipefy_token_attribution_deadline"));
}

#[test]
fn retry_and_backoff_settings_are_validated_by_key() {
    let env = &[(ENV_TOKEN, "t")];
    let config = parse_env(
        "pipefy: {max_tries: 1, retry_delay: 0s, backoff_base: 200ms, backoff_max: 2s}",
        env,
    )
    .unwrap();
    assert_eq!(config.max_tries, 1);
    assert_eq!(config.retry_delay, Duration::ZERO);
    assert_eq!(config.backoff_base, Duration::from_millis(200));
    assert_eq!(config.backoff_max, Duration::from_secs(2));
    for (yaml, key) in [
        (
            "pipefy: {max_tries: 0}",
            "key pipefy.max_tries: expected a whole number from 1 to 10, found 0",
        ),
        (
            "pipefy: {retry_delay: 2m}",
            "key pipefy.retry_delay: must be at most 1m",
        ),
        (
            "pipefy: {backoff_base: 0s}",
            "key pipefy.backoff_base: must be greater than 0",
        ),
        (
            "pipefy: {backoff_base: 2m, backoff_max: 1m}",
            "key pipefy.backoff_max: must be at least pipefy.backoff_base",
        ),
        (
            "pipefy: {backoff_max: soon}",
            "key pipefy.backoff_max: expected a duration such as 30s, 5m or 1h30m, found \"soon\"",
        ),
    ] {
        let msg = message(parse_env(yaml, env));
        assert!(msg.contains(key), "{yaml}: {msg}");
    }
}

/// `(name, interval, stale_after)` of each enabled collector, in seconds.
fn schedules(config: &Config) -> Vec<(&'static str, u64, u64)> {
    config
        .collectors
        .iter()
        .map(|c| {
            let s = c.schedule();
            (c.name(), s.interval.as_secs(), s.stale_after.as_secs())
        })
        .collect()
}

#[test]
fn each_collector_has_its_own_default_interval() {
    let config = parse_env("{}", &[(ENV_TOKEN, "t")]).unwrap();
    assert_eq!(
        schedules(&config),
        [
            ("subscription_limits", 300, 900),
            ("ai_credits", 900, 2700),
            ("api_usage", 900, 2700),
            ("automation_jobs", 900, 2700),
            ("integrations", 3600, 10800),
            ("token_attribution", 3600, 10800),
        ]
    );
}

#[test]
fn refresh_interval_is_the_interval_of_collectors_without_their_own() {
    let yaml = "refresh_interval: 2m\nstale_after: 10m\ncollectors:\n  subscription_limits: {interval: 1m}\n  integrations: {interval: 1h}\n  ai_credits: true\n  automation_jobs: false\n";
    let config = parse_env(yaml, &[(ENV_TOKEN, "t")]).unwrap();
    assert_eq!(
        schedules(&config),
        [
            ("subscription_limits", 60, 600),
            ("ai_credits", 120, 600),
            ("api_usage", 120, 600),
            ("integrations", 3600, 10800),
            ("token_attribution", 120, 600),
        ]
    );
}

#[test]
fn a_short_interval_warns_with_its_daily_cost() {
    let yaml = "organizations: [2, 300]\ncollectors:\n  subscription_limits: {interval: 30s}\n";
    let config = parse_env(yaml, &[(ENV_TOKEN, "t")]).unwrap();
    assert_eq!(
        config.warnings(),
        ["collectors.subscription_limits.interval is 30s: 2880 paid Pipefy calls a day for 2 organization(s), more with more organizations"]
    );
}

#[test]
fn unknown_keys_are_named_with_their_path() {
    // Before any validation (here: of the missing credential).
    let msg = message(parse("pipefy:\n  auth:\n    token_fle: /x\n"));
    assert_eq!(
        msg,
        "config file test.yml: line 3: key pipefy.auth.token_fle: unknown key `token_fle`, expected `token_file` or `service_account`"
    );
}

/// A wrong value for every key of the file, and the full message it gets (after
/// `config file test.yml: `): the line, the key, what was expected and what was found.
const BAD_VALUES: &[(&str, &str)] = &[
        ("pipefy: 5",
         "line 1: key pipefy: expected a table of settings, found 5"),
        ("pipefy:\n  endpoint: [1]",
         "line 2: key pipefy.endpoint: expected a string, found a list"),
        ("pipefy:\n  endpoint: ftp://x",
         "line 2: key pipefy.endpoint: must be an http(s) URL, got \"ftp://x\""),
        ("pipefy:\n  auth: token",
         "line 2: key pipefy.auth: expected a table with token_file or service_account, found \"token\""),
        ("pipefy:\n  auth:\n    token_fle: /x",
         "line 3: key pipefy.auth.token_fle: unknown key `token_fle`, expected `token_file` or `service_account`"),
        ("pipefy:\n  auth:\n    token_file: [a]",
         "line 3: key pipefy.auth.token_file: expected a file path, found a list"),
        ("pipefy:\n  auth:\n    service_account: yes",
         "line 3: key pipefy.auth.service_account: expected a table with client_id, client_secret_file and token_endpoint, found \"yes\""),
        ("pipefy:\n  auth:\n    service_account:\n      client_id: a\n      client_secret_file: /s\n      token_endpoint: 5",
         "line 6: key pipefy.auth.service_account.token_endpoint: invalid URL \"5\": relative URL without a base"),
        ("pipefy:\n  auth:\n    service_account:\n      client_secret_file: /s\n      token_endpoint: https://x/t",
         "line 3: key pipefy.auth.service_account: required key `client_id` is missing"),
        ("pipefy:\n  endpoint: https://api.pipefy.com/graphql\n  timeout: 30",
         "line 3: key pipefy.timeout: expected a duration such as 30s, 5m or 1h30m, found 30: a number needs a unit (ms, s, m, h, d, w, y), e.g. 30s"),
        ("pipefy:\n  timeout: 0s",
         "line 2: key pipefy.timeout: must be greater than 0"),
        ("pipefy:\n  timeout: 1.5",
         "line 2: key pipefy.timeout: expected a duration such as 30s, 5m or 1h30m, found 1.5: write fractions with a smaller unit, e.g. 1m30s or 1500ms"),
        ("pipefy:\n  max_orgs_per_request: 2.5",
         "line 2: key pipefy.max_orgs_per_request: expected a whole number, found 2.5"),
        ("pipefy:\n  max_orgs_per_request: 0",
         "line 2: key pipefy.max_orgs_per_request: expected a whole number from 1 to 500, found 0"),
        ("pipefy:\n  max_orgs_per_request: 501",
         "line 2: key pipefy.max_orgs_per_request: expected a whole number from 1 to 500, found 501"),
        ("pipefy:\n  list_page_size: 0",
         "line 2: key pipefy.list_page_size: expected a whole number from 1 to 1000, found 0"),
        ("pipefy:\n  max_complexity: 2000000",
         "line 2: key pipefy.max_complexity: expected a whole number from 1 to 1000000, found 2000000"),
        ("pipefy:\n  too_large_errors: [complexity, ' ']",
         "line 2: key pipefy.too_large_errors: must not hold an empty string"),
        ("pipefy:\n  max_concurrent_requests: -1",
         "line 2: key pipefy.max_concurrent_requests: expected a whole number from 1 to 64, found -1"),
        ("pipefy:\n  max_concurrent_requests: 99999999999999999999999",
         "line 2: key pipefy.max_concurrent_requests: expected a whole number, found 99999999999999999999999"),
        ("pipefy:\n  max_tries: \"3\"",
         "line 2: key pipefy.max_tries: expected a whole number, found \"3\""),
        ("pipefy:\n  max_tries: 11",
         "line 2: key pipefy.max_tries: expected a whole number from 1 to 10, found 11"),
        ("pipefy:\n  retry_delay: 2m",
         "line 2: key pipefy.retry_delay: must be at most 1m"),
        ("pipefy:\n  retry_delay: fast",
         "line 2: key pipefy.retry_delay: expected a duration such as 30s, 5m or 1h30m, found \"fast\": expected a number at \"fast\""),
        ("pipefy:\n  backoff_base: 0s",
         "line 2: key pipefy.backoff_base: must be greater than 0"),
        ("pipefy:\n  backoff_base: 2m\n  backoff_max: 1m",
         "line 3: key pipefy.backoff_max: must be at least pipefy.backoff_base"),
        ("pipefy:\n  backoff_max: true",
         "line 2: key pipefy.backoff_max: expected a duration such as 30s, 5m or 1h30m, found true"),
        ("refresh_interval: 5 minutes",
         "line 1: key refresh_interval: expected a duration such as 30s, 5m or 1h30m, found \"5 minutes\": unknown unit \" minutes\" (units: ms, s, m, h, d, w, y)"),
        ("refresh_interval: 5",
         "line 1: key refresh_interval: expected a duration such as 30s, 5m or 1h30m, found 5: a number needs a unit (ms, s, m, h, d, w, y), e.g. 5s"),
        ("refresh_interval: 0s",
         "line 1: key refresh_interval: must be greater than 0"),
        ("stale_after: 1.5",
         "line 1: key stale_after: expected a duration such as 30s, 5m or 1h30m, found 1.5: write fractions with a smaller unit, e.g. 1m30s or 1500ms"),
        ("stale_after:",
         "line 1: key stale_after: expected a duration such as 30s, 5m or 1h30m, found an empty value"),
        ("organizations: [2.5]",
         "line 1: key organizations[0]: expected an organization id (a positive integer or a string of digits), found 2.5"),
        ("organizations:\n  - 2\n  - acme",
         "line 3: key organizations[1]: expected an organization id (a positive integer or a string of digits), found \"acme\""),
        ("organizations:\n  - 2\n  - -4",
         "line 3: key organizations[1]: expected an organization id (a positive integer or a string of digits), found -4"),
        ("organizations: [0]",
         "line 1: key organizations[0]: expected an organization id (a positive integer or a string of digits), found 0"),
        ("organizations: 5",
         "line 1: key organizations: expected a list of organization ids, such as [\"2\", \"300\"], found 5"),
        ("organizations:\n  - {id: 3}",
         "line 2: key organizations[0]: expected an organization id (a positive integer or a string of digits), found a table"),
        ("accounts: {}",
         "line 1: key accounts: expected a list, found a table"),
        ("accounts: []",
         "line 1: key accounts: must list at least one account"),
        ("accounts:\n  - name: a",
         "line 2: key accounts[0]: required key `auth` is missing"),
        ("accounts:\n  - auth: {token_file: /a}",
         "line 2: key accounts[0]: required key `name` is missing"),
        ("accounts:\n  - name: a\n    auth: {token_file: /a}\n    bogus: 1",
         "line 4: key accounts[0].bogus: unknown key `bogus`, expected one of `name`, `auth`, `organizations`"),
        ("accounts:\n  - name: \"\"\n    auth: {token_file: /a}",
         "line 2: key accounts[0].name: must not be empty"),
        ("accounts:\n  - name: a\n    auth: {token_file: /a}\n    organizations: [x]",
         "line 4: key accounts[0].organizations[0]: expected an organization id (a positive integer or a string of digits), found \"x\""),
        ("colectors: {}",
         "line 1: key colectors: unknown key `colectors`, expected one of `pipefy`, `refresh_interval`, `stale_after`, `organizations`, `accounts`, `collectors`"),
        ("collectors: []",
         "line 1: key collectors: expected a table of settings, found a list"),
        ("collectors:\n  apiusage: true",
         "line 2: key collectors.apiusage: unknown key `apiusage`, expected one of `subscription_limits`, `ai_credits`, `api_usage`, `automation_jobs`, `integrations`, `token_attribution`"),
        ("collectors:\n  api_usage: yes please",
         "line 2: key collectors.api_usage: expected true, false, or a table of settings, found \"yes please\""),
        ("collectors:\n  api_usage: {by_tokens: true}",
         "line 2: key collectors.api_usage.by_tokens: unknown key `by_tokens`, expected one of `enabled`, `interval`, `period`, `by_token`, `by_operation`"),
        ("collectors:\n  api_usage:\n    by_token: 1",
         "line 3: key collectors.api_usage.by_token: expected true or false, found 1"),
        ("collectors:\n  api_usage:\n    by_operation: \"no\"",
         "line 3: key collectors.api_usage.by_operation: expected true or false, found \"no\""),
        ("collectors:\n  api_usage:\n    period: this_month",
         "line 3: key collectors.api_usage.period: expected one of current_month, last_month, last_3_months, found \"this_month\""),
        ("collectors:\n  ai_credits:\n    source: both",
         "line 3: key collectors.ai_credits.source: expected one of combined, per_organization, found \"both\""),
        ("collectors:\n  ai_credits:\n    enabled: yes",
         "line 3: key collectors.ai_credits.enabled: expected true or false, found \"yes\""),
        ("collectors:\n  automation_jobs:\n    interval: 10",
         "line 3: key collectors.automation_jobs.interval: expected a duration such as 30s, 5m or 1h30m, found 10: a number needs a unit (ms, s, m, h, d, w, y), e.g. 10s"),
        ("collectors:\n  integrations:\n    interval: 0s",
         "line 3: key collectors.integrations.interval: must be greater than 0"),
        ("collectors:\n  integrations:\n    period: [last_month]",
         "line 3: key collectors.integrations.period: expected one of current_month, last_month, last_3_months, found a list"),
        ("collectors:\n  subscription_limits:\n    period: last_month",
         "line 3: key collectors.subscription_limits.period: unknown key `period`, expected `enabled` or `interval`"),
        ("collectors:\n  token_attribution:\n    deadline: 2027-02-30",
         "line 3: key collectors.token_attribution.deadline: expected a date in the form YYYY-MM-DD, found \"2027-02-30\""),
        ("collectors:\n  token_attribution:\n    deadline: 20270105",
         "line 3: key collectors.token_attribution.deadline: expected a date in the form YYYY-MM-DD, found 20270105"),
        ("collectors:\n  token_attribution:\n    selection: \"{ a\"",
         "line 3: key collectors.token_attribution.selection: must be a non-empty GraphQL selection with balanced braces"),
        ("collectors:\n  token_attribution:\n    selection: [a]",
         "line 3: key collectors.token_attribution.selection: expected a string, found a list"),
        ("collectors: {subscription_limits: false, ai_credits: false, api_usage: false, automation_jobs: false, integrations: false, token_attribution: false}",
         "line 1: key collectors: every collector is disabled: nothing to export"),
        ("pipefy:\n  auth:\n    token_file: \"abc",
         "line 3: key pipefy.auth.token_file: invalid YAML: found unexpected end of stream, while scanning a quoted scalar"),
        ("organizations: [1, 2",
         "line 2: key organizations: invalid YAML: did not find expected ',' or ']', while parsing a flow sequence"),
        ("pipefy: *nope",
         "line 1: key pipefy: invalid YAML: unknown anchor"),
        ("- a",
         "line 1: key (top level): expected a table of settings, found a list"),
];

#[test]
fn every_bad_value_gets_its_line_key_and_expectation() {
    for (yaml, expected) in BAD_VALUES {
        let msg = message(parse_env(yaml, &[(ENV_TOKEN, "t")]));
        assert_eq!(msg, format!("config file test.yml: {expected}"), "{yaml}");
    }
}

#[test]
fn no_message_speaks_rust() {
    for (yaml, _) in BAD_VALUES {
        let msg = message(parse_env(yaml, &[(ENV_TOKEN, "t")]));
        for rust in [
            "struct ", "enum ", "variant", "usize", "u32", "u64", "u128", "i64", "f64", "Raw", "::",
        ] {
            assert!(!msg.contains(rust), "{rust:?} in {msg}");
        }
    }
}

#[test]
fn missing_or_double_auth_is_an_error() {
    let msg = message(parse("organizations: [2]"));
    assert!(msg.contains("key pipefy.auth: required"), "{msg}");
    let msg = message(parse(
        "pipefy:\n  auth:\n    token_file: /a\n    service_account: {client_id: a, token_endpoint: 'https://x/t'}\n",
    ));
    assert!(msg.contains("exactly one"), "{msg}");
}

#[test]
fn missing_secret_file_names_key_and_file() {
    let msg = message(parse(
        "pipefy:\n  auth:\n    token_file: /nonexistent/pipefy-token\n",
    ));
    assert!(
        msg.contains("key pipefy.auth.token_file: cannot read /nonexistent/pipefy-token"),
        "{msg}"
    );
}

#[test]
fn secrets_come_from_files_and_env_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cr3t\n").unwrap();
    let yaml = format!(
        "pipefy:\n  auth:\n    service_account:\n      client_id: abc\n      client_secret_file: {}\n      token_endpoint: https://auth.example/oauth/token\n",
        secret.display()
    );
    let expected = |s: &str, file: Option<&Path>| Credential::ServiceAccount {
        client_id: "abc".into(),
        client_secret: Secret::new(s),
        client_secret_file: file.map(Path::to_path_buf),
        token_endpoint: "https://auth.example/oauth/token".into(),
    };
    // The file is remembered, to be read again when the secret is refused.
    assert_eq!(
        parse(&yaml).unwrap().accounts[0].credential,
        expected("s3cr3t", Some(&secret))
    );
    let from_env = parse_env(&yaml, &[(ENV_CLIENT_SECRET, "from-env")]).unwrap();
    assert_eq!(from_env.accounts[0].credential, expected("from-env", None));
    // Debug output never shows a secret.
    assert!(!format!("{from_env:?}").contains("from-env"));
}

#[test]
fn an_override_set_but_empty_is_an_error_that_says_so() {
    let msg = message(parse_env("organizations: [2]", &[(ENV_TOKEN, "")]));
    assert_eq!(
        msg,
        "config file test.yml: key pipefy.auth: the PIPEFY_TOKEN environment variable is set but empty: put the token in it or unset it (it takes the place of pipefy.auth.token_file)"
    );
    // It overrides the file: falling back to the file would hide the mistake.
    let msg = message(parse_env(
        "pipefy:\n  auth:\n    token_file: /nonexistent/token\n",
        &[(ENV_TOKEN, " \n")],
    ));
    assert_eq!(
        msg,
        "config file test.yml: line 2: key pipefy.auth: the PIPEFY_TOKEN environment variable is set but empty: put the token in it or unset it (it takes the place of pipefy.auth.token_file)"
    );
    let yaml = "pipefy:\n  auth:\n    service_account:\n      client_id: abc\n      token_endpoint: https://auth.example/oauth/token\n";
    let msg = message(parse_env(yaml, &[(ENV_CLIENT_SECRET, "")]));
    assert_eq!(
        msg,
        "config file test.yml: line 2: key pipefy.auth: the PIPEFY_CLIENT_SECRET environment variable is set but empty: put the client secret in it or unset it (it takes the place of pipefy.auth.service_account.client_secret_file)"
    );
    // Unset, the message is about the key instead.
    let msg = message(parse(yaml));
    assert_eq!(
        msg,
        "config file test.yml: line 3: key pipefy.auth.service_account.client_secret_file: required (or the PIPEFY_CLIENT_SECRET environment variable)"
    );
}

#[test]
fn relative_secret_files_are_taken_from_the_config_files_directory() {
    // The test's working directory is the crate root, which has no `secrets/`: only
    // the config file's directory can make these paths readable.
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("etc");
    std::fs::create_dir_all(conf.join("secrets")).unwrap();
    std::fs::write(conf.join("secrets/token"), "pat-rel\n").unwrap();
    std::fs::write(conf.join("secrets/client"), "cs-rel").unwrap();
    assert!(!Path::new("secrets/token").exists());
    let file = conf.join("pipefy.yml");
    let yaml = "accounts:\n  - name: a\n    auth: {token_file: secrets/token}\n  - name: b\n    auth:\n      service_account: {client_id: c, client_secret_file: ./secrets/client, token_endpoint: 'https://auth.example/t'}\n";
    let config = Config::from_yaml(yaml, &file, &|_| None).unwrap();
    assert_eq!(
        config.accounts[0].credential,
        Credential::Token {
            token: Secret::new("pat-rel"),
            // Resolved, so that a rotation re-reads this very file.
            file: Some(conf.join("secrets/token")),
        }
    );
    assert_eq!(
        config.accounts[1].credential,
        Credential::ServiceAccount {
            client_id: "c".into(),
            client_secret: Secret::new("cs-rel"),
            client_secret_file: Some(conf.join("./secrets/client")),
            token_endpoint: "https://auth.example/t".into(),
        }
    );
    // A missing one is named by the path that was tried.
    let msg = Config::from_yaml("pipefy: {auth: {token_file: missing}}", &file, &|_| None)
        .unwrap_err()
        .to_string();
    let tried = conf.join("missing");
    assert!(
        msg.starts_with(&format!(
            "config file {}: line 1: key pipefy.auth.token_file: cannot read {}: ",
            file.display(),
            tried.display()
        )),
        "{msg}"
    );
}

#[test]
fn secrets_never_reach_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "pat-s3cr3t").unwrap();
    // A valid credential and a later error: the message is about the later key only.
    let yaml = format!(
        "pipefy:\n  auth: {{token_file: {}}}\n  max_tries: 99\n",
        token.display()
    );
    for env in [&[][..], &[(ENV_TOKEN, "env-s3cr3t")][..]] {
        let msg = message(parse_env(&yaml, env));
        assert!(
            msg.ends_with("key pipefy.max_tries: expected a whole number from 1 to 10, found 99"),
            "{msg}"
        );
        assert!(!msg.contains("s3cr3t"), "{msg}");
    }
}

#[test]
fn accounts_replace_the_top_level_pair() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::write(&a, "tok-a").unwrap();
    let yaml = format!(
        "accounts:\n  - name: acme\n    auth: {{token_file: {0}}}\n    organizations: [\"42\"]\n  - name: group\n    auth: {{token_file: {0}}}\n",
        a.display()
    );
    let config = parse(&yaml).unwrap();
    assert_eq!(config.accounts.len(), 2);
    assert_eq!(
        config.accounts[0].organizations,
        Some(vec!["42".to_string()])
    );
    assert_eq!(config.accounts[1].organizations, None);

    let both = format!("organizations: [1]\n{yaml}");
    assert!(
        message(parse(&both)).contains("key organizations: not allowed together with `accounts`")
    );
    let dup = format!(
        "accounts:\n  - name: a\n    auth: {{token_file: {0}}}\n    organizations: [1]\n  - name: b\n    auth: {{token_file: {0}}}\n    organizations: [1]\n",
        a.display()
    );
    assert!(message(parse(&dup))
        .contains("key accounts[1].organizations: organization 1 is already listed"));
}

#[test]
fn collectors_can_be_disabled() {
    let config = parse_env(
        "collectors:\n  ai_credits: false\n  token_attribution:\n    enabled: false\n",
        &[(ENV_TOKEN, "t")],
    )
    .unwrap();
    let names: Vec<&str> = config.collectors.iter().map(|c| c.name()).collect();
    assert_eq!(
        names,
        [
            "subscription_limits",
            "api_usage",
            "automation_jobs",
            "integrations"
        ]
    );
    let none = "collectors: {subscription_limits: false, ai_credits: false, api_usage: false, automation_jobs: false, integrations: false, token_attribution: false}";
    let msg = message(parse_env(none, &[(ENV_TOKEN, "t")]));
    assert!(
        msg.contains("key collectors: every collector is disabled"),
        "{msg}"
    );
}

// -----------------------------------------------------------------------------
// The Helm chart's values.schema.json describes `config:` (this file's format) so
// that `helm install` rejects what would crash-loop the pod. These tests keep the two
// in step, with the parser itself as the reference: at every table, the schema lists
// exactly the keys the parser knows, refuses others, and each leaf's example is a
// value the parser accepts.

type Json = serde_json::Value;

fn chart_schema() -> Json {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/helm/pipefy-exporter/values.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `node` with its `$ref` (`#/definitions/x`) followed.
fn deref<'a>(root: &'a Json, node: &'a Json) -> &'a Json {
    match node["$ref"].as_str() {
        Some(r) => {
            let name = r.strip_prefix("#/definitions/").unwrap();
            deref(root, &root["definitions"][name])
        }
        None => node,
    }
}

/// A path in the config: a key, or the first item of a list.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Item,
}

fn path_name(path: &[Step]) -> String {
    let mut name = String::new();
    for step in path {
        match step {
            Step::Key(k) if name.is_empty() => name.push_str(k),
            Step::Key(k) => name.push_str(&format!(".{k}")),
            Step::Item => name.push_str("[0]"),
        }
    }
    if name.is_empty() {
        name.push_str("(top level)");
    }
    name
}

/// The JSON (hence YAML) document with `leaf` at `path`, and around it what the
/// parser requires there: an account's name and auth, a service account's fields,
/// readable secret files.
fn document(path: &[Step], leaf: Json, secret: &Path) -> String {
    let secret = Json::String(secret.display().to_string());
    let mut doc = match path.last() {
        Some(Step::Key(k)) if k.ends_with("_file") => secret.clone(),
        _ => leaf,
    };
    for step in path.iter().rev() {
        doc = match step {
            Step::Key(k) => serde_json::json!({ k.as_str(): doc }),
            Step::Item => serde_json::json!([doc]),
        };
    }
    if let Some(account) = doc.pointer_mut("/accounts/0").and_then(Json::as_object_mut) {
        account.entry("name").or_insert("a".into());
        account
            .entry("auth")
            .or_insert(serde_json::json!({ "token_file": secret.clone() }));
    }
    for at in [
        "/pipefy/auth/service_account",
        "/accounts/0/auth/service_account",
    ] {
        if let Some(sa) = doc.pointer_mut(at).and_then(Json::as_object_mut) {
            sa.entry("client_id").or_insert("c".into());
            sa.entry("client_secret_file").or_insert(secret.clone());
            sa.entry("token_endpoint")
                .or_insert("https://auth.example/t".into());
        }
    }
    doc.to_string()
}

/// The keys the parser knows in the table at `path`, from its own "unknown key"
/// message.
fn parser_keys(path: &[Step], secret: &Path) -> Vec<String> {
    let mut probe = path.to_vec();
    probe.push(Step::Key("zz_unknown".into()));
    let yaml = document(&probe, 1.into(), secret);
    let msg = message(parse_env(&yaml, &[(ENV_TOKEN, "t")]));
    let (_, expected) = msg
        .split_once("unknown key `zz_unknown`, expected ")
        .unwrap_or_else(|| panic!("{yaml}: {msg}"));
    let mut keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

/// Walks the schema from `node` at `path`, checking each table against the parser;
/// returns the number of leaves checked.
fn walk(root: &Json, node: &Json, path: &mut Vec<Step>, secret: &Path) -> usize {
    let node = deref(root, node);
    let name = path_name(path);
    if let Some(properties) = node["properties"].as_object() {
        assert_eq!(
            node["additionalProperties"],
            Json::Bool(false),
            "{name}: the schema must refuse unknown keys"
        );
        let mut schema_keys: Vec<String> = properties.keys().cloned().collect();
        schema_keys.sort();
        assert_eq!(schema_keys, parser_keys(path, secret), "keys of {name}");
        let mut leaves = 0;
        for (key, child) in properties {
            path.push(Step::Key(key.clone()));
            leaves += walk(root, child, path, secret);
            path.pop();
        }
        return leaves;
    }
    if node["type"] == "array" && deref(root, &node["items"])["properties"].is_object() {
        path.push(Step::Item);
        let leaves = walk(root, &node["items"], path, secret);
        path.pop();
        return leaves;
    }
    let example = node["examples"][0].clone();
    assert!(!example.is_null(), "{name}: a leaf needs an example");
    let yaml = document(path, example, secret);
    if let Err(e) = parse_env(&yaml, &[(ENV_TOKEN, "t")]) {
        panic!("the parser refuses the schema's example for {name}: {yaml}: {e}");
    }
    1
}

#[test]
fn the_chart_schema_describes_exactly_what_the_parser_reads() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s").unwrap();
    let root = chart_schema();
    let config = &root["properties"]["config"];
    let leaves = walk(&root, config, &mut Vec::new(), &secret);
    // pipefy: 13 settings + auth (token_file, 3 of service_account); 3 top-level; an
    // account: name, organizations + auth; the collectors: 2 each (enabled,
    // interval) + ai_credits 2, api_usage 3, automation_jobs 1, integrations 1,
    // token_attribution 7 (deadline, selection, query, 4 paths). A walk that stopped
    // early would count fewer.
    assert_eq!(leaves, (13 + 4) + 3 + (2 + 4) + (6 * 2 + 2 + 3 + 1 + 1 + 7));
    let collectors = deref(&root, config)["properties"]["collectors"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect::<Vec<_>>();
    let mut names = crate::collectors::NAMES.to_vec();
    names.sort_unstable();
    assert_eq!(collectors, names);
}

#[test]
fn mangled_files_give_errors_not_panics() {
    let valid = "pipefy:\n  endpoint: https://api.pipefy.com/graphql\n  auth:\n    token_file: /nonexistent\n  timeout: 30s\nrefresh_interval: 5m\nstale_after: 15m\norganizations: [\"2\", 300]\ncollectors:\n  token_attribution:\n    deadline: 2027-01-05\n";
    let inserts = [
        "",
        ":",
        "-",
        "[",
        "{",
        "\"",
        "\n",
        "  ",
        "é",
        "\u{0}",
        "99999999999999999999",
        "~",
        "&a",
        "*a",
        "!!binary",
    ];
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    for _ in 0..3_000 {
        let mut text: Vec<char> = valid.chars().collect();
        for _ in 0..1 + next(4) {
            let at = next(text.len() + 1);
            match next(3) {
                0 if at < text.len() => {
                    text.remove(at);
                }
                0 => {}
                1 => text
                    .splice(at..at, inserts[next(inserts.len())].chars())
                    .for_each(drop),
                _ => text.truncate(at),
            }
        }
        let text: String = text.into_iter().collect();
        // Every outcome is an Ok or an error naming the file; never a panic.
        if let Err(e) = parse_env(&text, &[(ENV_TOKEN, "t")]) {
            let msg = e.to_string();
            let rest = msg.strip_prefix("config file test.yml: ").unwrap_or("");
            let rest = match rest.strip_prefix("line ") {
                Some(line) => line
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .strip_prefix(": ")
                    .unwrap_or(""),
                None => rest,
            };
            assert!(rest.starts_with("key "), "{msg}");
        }
    }
}
