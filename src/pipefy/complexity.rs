//! Pipefy's query complexity and depth, estimated from a root field's text the way
//! Pipefy's API reference describes them: every field adds 1 to a score, and the fields
//! inside a list are counted once per item of a page (`first:` when the field or the
//! connection around it has one, else a default page size, which Pipefy does not
//! state: `pipefy.list_page_size`, an assumption). A document's complexity is the sum of
//! its root fields'; Pipefy refuses one above 50,000, or deeper than 15.
//!
//! The text is the exporter's own (collectors' constants and the token selection, which
//! the config allows only fields, aliases, braces and literal arguments), so a small
//! tokenizer is enough; nothing here sees Pipefy's answers.

/// Pipefy's documented limits per query.
pub(crate) const MAX_COMPLEXITY: u64 = 50_000;
pub(crate) const MAX_DEPTH: usize = 15;

/// The fields Pipefy's documentation shows as lists (by field name or by the alias a
/// configured selection maps onto the documented shape). Any other field with a
/// selection is counted as a single object.
const LISTS: &[&str] = &[
    "organizations",
    "myUsageStatsOrganizations",
    "limits",
    "members",
    "personalAccessTokens",
    "byOrganization",
    "topItems",
    "topAgents",
    "byPipe",
    "data",
    "automations",
    "nodes",
    "edges",
];

/// A root field's estimated complexity and depth (the root field is depth 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Estimate {
    pub complexity: u64,
    pub depth: usize,
}

/// Estimates one field as written in a query (`name(args) { selection }`, optionally
/// `alias: ...`), or several fields one after the other.
pub(crate) fn estimate(text: &str, page_size: u64) -> Estimate {
    let tokens = tokenize(text);
    let mut parser = Parser {
        tokens: &tokens,
        at: 0,
        page_size,
    };
    parser.selection(None)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Token<'a> {
    Name(&'a str),
    Number(u64),
    Punct(char),
}

fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_alphabetic() || c == b'_' {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            tokens.push(Token::Name(&text[start..i]));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Number(text[start..i].parse().unwrap_or(u64::MAX)));
        } else {
            if matches!(c, b'{' | b'}' | b'(' | b')' | b':') {
                tokens.push(Token::Punct(c as char));
            }
            i += 1;
        }
    }
    tokens
}

struct Parser<'t, 'a> {
    tokens: &'t [Token<'a>],
    at: usize,
    page_size: u64,
}

impl<'a> Parser<'_, 'a> {
    fn peek(&self) -> Option<Token<'a>> {
        self.tokens.get(self.at).copied()
    }

    /// Fields up to the closing brace (or the end); `first` is the page size set by the
    /// enclosing field, for the lists right inside it (a connection's `nodes`).
    fn selection(&mut self, first: Option<u64>) -> Estimate {
        let mut total = Estimate::default();
        while let Some(token) = self.peek() {
            match token {
                Token::Punct('}') => {
                    self.at += 1;
                    break;
                }
                Token::Name(_) => {
                    let field = self.field(first);
                    total.complexity = total.complexity.saturating_add(field.complexity);
                    total.depth = total.depth.max(field.depth);
                }
                _ => self.at += 1,
            }
        }
        total
    }

    /// `[alias:] name [(args)] [{ selection }]`.
    fn field(&mut self, outer_first: Option<u64>) -> Estimate {
        let mut names = Vec::with_capacity(2);
        if let Some(Token::Name(name)) = self.peek() {
            names.push(name.to_owned());
            self.at += 1;
        }
        if self.peek() == Some(Token::Punct(':')) {
            self.at += 1;
            if let Some(Token::Name(name)) = self.peek() {
                names.push(name.to_owned());
                self.at += 1;
            }
        }
        let first = if self.peek() == Some(Token::Punct('(')) {
            self.arguments()
        } else {
            None
        };
        let is_list = names.iter().any(|n| LISTS.contains(&n.as_str()));
        if self.peek() != Some(Token::Punct('{')) {
            return Estimate {
                complexity: 1,
                depth: 1,
            };
        }
        self.at += 1;
        let inner = self.selection(first);
        let per_item = if is_list {
            first.or(outer_first).unwrap_or(self.page_size)
        } else {
            1
        };
        Estimate {
            complexity: inner.complexity.saturating_mul(per_item).saturating_add(1),
            depth: inner.depth + 1,
        }
    }

    /// Skips `( ... )`, returning a literal `first: N` if there is one.
    fn arguments(&mut self) -> Option<u64> {
        let mut first = None;
        self.at += 1;
        while let Some(token) = self.peek() {
            self.at += 1;
            match token {
                Token::Punct(')') => break,
                Token::Name("first") if self.peek() == Some(Token::Punct(':')) => {
                    if let Some(Token::Number(n)) = self.tokens.get(self.at + 1) {
                        first = Some(*n);
                    }
                }
                _ => {}
            }
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipefys_worked_example_scores_17() {
        // developers.pipefy.com/reference/limits-and-best-practices: `name` inside
        // `nodes` counts 10 times, once per item of `first: 10`.
        let query = "organization(id: 123) { name tables(first: 10) { nodes { name } pageInfo { endCursor } totalCount } }";
        assert_eq!(
            estimate(query, 50),
            Estimate {
                complexity: 17,
                depth: 4
            }
        );
    }

    #[test]
    fn lists_without_first_count_the_assumed_page_size() {
        let limits = "organization(id: $id) { id uuid name planName activeSubscription { limits { resource limit used } } }";
        // 1 + 4 + activeSubscription (1 + limits (1 + 3 × 50)).
        assert_eq!(estimate(limits, 50).complexity, 157);
        assert_eq!(estimate(limits, 10).complexity, 37);
        assert_eq!(estimate(limits, 50).depth, 4);
    }

    #[test]
    fn an_alias_onto_a_documented_list_counts_as_that_list() {
        let aliased = "organization(id: $id) { id personalAccessTokens: accessTokens { id name billingOrganization { id } } }";
        // 1 + 1 + (1 + 50 × (1 + 1 + (1 + 1))).
        assert_eq!(estimate(aliased, 50).complexity, 203);
    }

    #[test]
    fn several_fields_add_up_and_arguments_are_skipped() {
        let text = "apiUsageStats(organizationUuid: $uuid, period: $period, dimension: $dimension) { data { dimension metric } limit } integrationsUsageStats(organizationUuid: $uuid, period: $period) { tasksConsumed { usage limit } activeFlows }";
        // (1 + (1 + 2 × 50) + 1) + (1 + (1 + 2) + 1).
        assert_eq!(estimate(text, 50).complexity, 103 + 5);
    }
}
