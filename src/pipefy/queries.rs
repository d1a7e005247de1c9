//! GraphQL documents. Organizations are batched into one request with aliases
//! (`o0: organization(id: $o0) {...}`), their ids passed as variables: an id is never
//! spliced into the query text, so no value can change the query's meaning.

use serde_json::{Map, Value};

/// Discovery of every organization the credential can see.
pub const ORGANIZATIONS: &str =
    "query PipefyOrganizations { organizations { id uuid name planName } }";

const ORG_FIELDS: &str = "fragment OrgFields on Organization { id uuid name planName }";
const LIMIT_FIELDS: &str = "fragment OrgLimits on Organization { id uuid name planName activeSubscription { limits { resource limit used } } }";
const AI_FIELDS: &str = "fragment AiCredits on AiCreditUsageStats { active usage limit hasAddon updatedAt freeAiCredit { limit usage } }";

/// One batched request: its text, its variables, and which alias stands for which
/// organization.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub text: String,
    pub variables: Value,
    /// `(alias, key)`: the key is the organization id (or uuid for AI credits).
    pub aliases: Vec<(String, String)>,
}

/// Subscription limits and identity of each organization.
pub fn subscription_limits(ids: &[&str]) -> Batch {
    build(
        "PipefySubscriptionLimits",
        ids,
        |v| format!("organization(id: ${v}) {{ ...OrgLimits }}"),
        LIMIT_FIELDS,
    )
}

/// Identity only, for when limits are disabled but AI credits need the uuid.
pub fn organization_info(ids: &[&str]) -> Batch {
    build(
        "PipefyOrganizationInfo",
        ids,
        |v| format!("organization(id: ${v}) {{ ...OrgFields }}"),
        ORG_FIELDS,
    )
}

/// AI-credit statistics of the current month; keyed by organization *uuid*.
pub fn ai_credits(uuids: &[&str]) -> Batch {
    build(
        "PipefyAiCredits",
        uuids,
        |v| {
            format!("aiCreditUsageStats(organizationUuid: ${v}, period: current_month) {{ ...AiCredits }}")
        },
        AI_FIELDS,
    )
}

/// Personal access tokens of each organization. `selection` is the configured
/// selection (see `collectors.token_attribution.selection`), which must produce
/// `personalAccessTokens { id name billingOrganization { id } }` under each alias.
pub fn token_attribution(ids: &[&str], selection: &str) -> Batch {
    build(
        "PipefyTokenAttribution",
        ids,
        |v| format!("organization(id: ${v}) {{ id {selection} }}"),
        "",
    )
}

fn build(name: &str, keys: &[&str], field: impl Fn(&str) -> String, fragment: &str) -> Batch {
    let aliases: Vec<(String, String)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (format!("o{i}"), (*key).to_owned()))
        .collect();
    let params: Vec<String> = aliases.iter().map(|(a, _)| format!("${a}: ID!")).collect();
    let mut text = format!("query {name}({}) {{", params.join(", "));
    for (alias, _) in &aliases {
        text.push_str(&format!(" {alias}: {}", field(alias)));
    }
    text.push_str(" }");
    if !fragment.is_empty() {
        text.push(' ');
        text.push_str(fragment);
    }
    let variables: Map<String, Value> = aliases
        .iter()
        .map(|(alias, key)| (alias.clone(), Value::String(key.clone())))
        .collect();
    Batch {
        text,
        variables: Value::Object(variables),
        aliases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_use_aliases_and_variables() {
        let batch = subscription_limits(&["2", "300"]);
        assert_eq!(
            batch.text,
            "query PipefySubscriptionLimits($o0: ID!, $o1: ID!) { \
             o0: organization(id: $o0) { ...OrgLimits } o1: organization(id: $o1) { ...OrgLimits } } \
             fragment OrgLimits on Organization { id uuid name planName activeSubscription { limits { resource limit used } } }"
        );
        assert_eq!(batch.variables, serde_json::json!({"o0": "2", "o1": "300"}));
        assert_eq!(
            batch.aliases,
            vec![("o0".into(), "2".into()), ("o1".into(), "300".into())]
        );
        assert!(!batch.text.contains("300"), "ids never appear in the text");
    }

    #[test]
    fn token_selection_is_configurable() {
        let batch = token_attribution(
            &["2"],
            "personalAccessTokens: accessTokens { id name billingOrganization { id } }",
        );
        assert_eq!(
            batch.text,
            "query PipefyTokenAttribution($o0: ID!) { o0: organization(id: $o0) { id personalAccessTokens: accessTokens { id name billingOrganization { id } } } }"
        );
    }
}
