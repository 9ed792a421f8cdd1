//! Channel rules (docs/channel-rules.md): a touch's channel named from its source, medium,
//! campaign and referrer by ordered rules, the first that matches winning, `Unassigned`
//! when none does. Rules come as JSON (`"ga4"`, or the rules inline) and are checked and
//! compiled once into [`ChannelRules`]; ingestion applies them through a
//! [`ChannelClassifier`], which runs them once per distinct touch and remembers the answer.

mod ga4;

use std::fmt;
use std::sync::{Arc, OnceLock};

use regex::{Regex, RegexBuilder};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AttributionError, quoted};

/// Longest channel name accepted (from a channel column, a path or a rule), in bytes.
pub const MAX_CHANNEL_NAME_BYTES: usize = 1024;
/// The most rules one set may have.
pub const MAX_RULES: usize = 1000;
/// The longest value an operator may compare with (and the longest regex), in bytes.
pub const MAX_VALUE_BYTES: usize = 1024;
/// The most values every `in` list of a rule set may hold together.
pub const MAX_LIST_VALUES: usize = 50_000;
/// The most regexes a rule set may have.
pub const MAX_REGEXES: usize = 200;
/// What one compiled regex (and its lazy DFA's cache) may take, in bytes: with
/// [`MAX_REGEXES`], a rule set's regexes stay within about 100 MiB whatever they say.
const MAX_REGEX_BYTES: usize = 256 << 10;
/// The channel of a touch that no rule matches.
pub const UNASSIGNED: &str = "Unassigned";

/// The fields of a touch that rules read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TouchField {
    Source,
    Medium,
    Campaign,
    Referrer,
}

impl TouchField {
    pub const ALL: [TouchField; 4] =
        [TouchField::Source, TouchField::Medium, TouchField::Campaign, TouchField::Referrer];

    pub fn name(self) -> &'static str {
        match self {
            TouchField::Source => "source",
            TouchField::Medium => "medium",
            TouchField::Campaign => "campaign",
            TouchField::Referrer => "referrer",
        }
    }

    fn parse(name: &str) -> Option<TouchField> {
        TouchField::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// One touch's fields as its row gives them; empty when the row has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Touch<'a> {
    pub source: &'a str,
    pub medium: &'a str,
    pub campaign: &'a str,
    pub referrer: &'a str,
}

impl<'a> Touch<'a> {
    fn fields(&self) -> [&'a str; 4] {
        [self.source, self.medium, self.campaign, self.referrer]
    }

    /// True when the row names none of the four fields.
    pub fn is_empty(&self) -> bool {
        self.fields().iter().all(|f| f.trim().is_empty())
    }
}

/// What a result's options report of the rules that named the channels.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedChannelRules {
    /// `ga4` (Google Analytics 4's default channel group) or `custom` (rules given inline).
    pub name: RuleSetName,
    /// How many rules the set has.
    pub rules: u32,
}

/// The name of a rule set as results report it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleSetName {
    Ga4,
    Custom,
}

/// Checked and compiled channel rules, cheap to clone. Read from JSON: `"ga4"` or an array
/// of rules; written back the same way.
#[derive(Clone)]
pub struct ChannelRules(Arc<Compiled>);

struct Compiled {
    /// `Some` for a built-in set: its name is what a spec says, not its rules.
    builtin: Option<&'static str>,
    /// The rules as given, written back when a spec is stored.
    given: Value,
    rules: Vec<Rule>,
    /// Every channel a rule names, in first-named order, then `Unassigned` if no rule names it.
    channels: Vec<String>,
    unassigned: u32,
}

struct Rule {
    channel: u32,
    /// All must hold; none makes the rule a catch-all.
    conditions: Vec<Condition>,
}

struct Condition {
    field: TouchField,
    test: Test,
}

/// An operator with its value, lower-cased (values are compared lower-cased).
enum Test {
    Equals(String),
    In(FxHashSet<String>),
    Regex(Regex),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
}

const OPERATORS: [&str; 6] = ["equals", "in", "regex", "contains", "starts_with", "ends_with"];

impl Test {
    fn matches(&self, value: &str) -> bool {
        match self {
            Test::Equals(expected) => value == expected,
            Test::In(set) => set.contains(value),
            Test::Regex(regex) => regex.is_match(value),
            Test::Contains(part) => value.contains(part.as_str()),
            Test::StartsWith(prefix) => value.starts_with(prefix.as_str()),
            Test::EndsWith(suffix) => value.ends_with(suffix.as_str()),
        }
    }
}

impl ChannelRules {
    /// The built-in set named `name` (`ga4`).
    pub fn named(name: &str) -> Result<ChannelRules, AttributionError> {
        match name {
            "ga4" => Ok(ChannelRules::ga4()),
            other => Err(AttributionError::option(
                "channel_rules",
                format!("{} is not a built-in rule set (known: ga4), nor an array of rules", quoted(other)),
            )),
        }
    }

    /// Google Analytics 4's default channel group, compiled once per process.
    pub fn ga4() -> ChannelRules {
        static GA4: OnceLock<ChannelRules> = OnceLock::new();
        GA4.get_or_init(|| {
            let compiled = compile(&ga4::rules(), Some("ga4")).expect("the built-in GA4 rules are valid");
            ChannelRules(Arc::new(compiled))
        })
        .clone()
    }

    /// Rules from JSON: the name of a built-in set, or an array of rules. The error names
    /// the rule (by its index, from 0) and the field at fault.
    pub fn from_json(value: &Value) -> Result<ChannelRules, AttributionError> {
        match value {
            Value::String(name) => ChannelRules::named(name),
            Value::Array(_) => Ok(ChannelRules(Arc::new(compile(value, None)?))),
            _ => Err(AttributionError::option(
                "channel_rules",
                "must be the name of a built-in rule set (`ga4`) or an array of rules",
            )),
        }
    }

    /// Every channel these rules can give, `Unassigned` among them; a touch's channel is
    /// an index into this list.
    pub fn channels(&self) -> &[String] {
        &self.0.channels
    }

    pub fn len(&self) -> usize {
        self.0.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.rules.is_empty()
    }

    /// What a result reports of these rules.
    pub fn applied(&self) -> AppliedChannelRules {
        let name = if self.0.builtin == Some("ga4") { RuleSetName::Ga4 } else { RuleSetName::Custom };
        AppliedChannelRules { name, rules: self.0.rules.len() as u32 }
    }

    /// The channel of a touch, as an index into [`ChannelRules::channels`]: the first rule
    /// that matches the touch's fields (trimmed, lower-cased, and completed as
    /// [`normalised`] says), else `Unassigned`.
    pub fn channel_index(&self, touch: &Touch<'_>) -> u32 {
        let fields = normalised(touch);
        let value = |field: TouchField| fields[field as usize].as_str();
        self.0
            .rules
            .iter()
            .find(|rule| rule.conditions.iter().all(|c| c.test.matches(value(c.field))))
            .map_or(self.0.unassigned, |rule| rule.channel)
    }

    /// The channel name of a touch.
    pub fn channel_of(&self, touch: &Touch<'_>) -> &str {
        &self.0.channels[self.channel_index(touch) as usize]
    }
}

/// The touch's fields as rules see them: trimmed and lower-cased; a touch with neither
/// source nor medium gets them as Google Analytics does: from its referrer (a search
/// engine's: source = the engine, medium = `organic`; any other: source = the referrer's
/// host without `www.`, medium = `referral`), or, without one, source `(direct)` and
/// medium `(none)`.
fn normalised(touch: &Touch<'_>) -> [String; 4] {
    let mut fields = touch.fields().map(|f| f.trim().to_lowercase());
    if fields[0].is_empty() && fields[1].is_empty() {
        let (source, medium) = match referrer_host(&fields[3]) {
            Some(host) => match ga4::search_engine(host) {
                Some(engine) => (engine.to_owned(), "organic"),
                None => (host.to_owned(), "referral"),
            },
            None => ("(direct)".to_owned(), "(none)"),
        };
        fields[0] = source;
        fields[1] = medium.to_owned();
    }
    fields
}

/// The host of a referrer URL (`https://www.example.com:8080/a?b` → `example.com`), or of a
/// bare host (`example.com/page`); `None` when there is none.
fn referrer_host(referrer: &str) -> Option<&str> {
    let rest = referrer.split_once("://").map_or(referrer, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_and_port = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host_and_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => host_and_port,
    };
    let host = host.strip_prefix("www.").unwrap_or(host);
    (!host.is_empty()).then_some(host)
}

impl PartialEq for ChannelRules {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || (self.0.builtin == other.0.builtin && self.0.given == other.0.given)
    }
}

impl fmt::Debug for ChannelRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.builtin {
            Some(name) => write!(f, "ChannelRules({name})"),
            None => write!(f, "ChannelRules(custom, {} rules)", self.0.rules.len()),
        }
    }
}

impl Serialize for ChannelRules {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.builtin {
            Some(name) => serializer.serialize_str(name),
            None => self.0.given.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for ChannelRules {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        ChannelRules::from_json(&value).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Checks and compiles an array of rules, naming the first fault by its path
/// (`channel_rules[2].when.medium.regex`).
fn compile(given: &Value, builtin: Option<&'static str>) -> Result<Compiled, AttributionError> {
    let Value::Array(rules) = given else {
        return Err(AttributionError::option("channel_rules", "must be an array of rules"));
    };
    if rules.is_empty() {
        return Err(AttributionError::option("channel_rules", "name at least one rule"));
    }
    if rules.len() > MAX_RULES {
        return Err(AttributionError::option(
            "channel_rules",
            format!("{} rules are more than the {MAX_RULES} a rule set may have", rules.len()),
        ));
    }
    let mut compiler = Compiler::default();
    let compiled_rules =
        rules.iter().enumerate().map(|(i, rule)| compiler.rule(i, rule)).collect::<Result<Vec<_>, _>>()?;
    let unassigned = compiler.channel_id(UNASSIGNED);
    Ok(Compiled {
        builtin,
        given: if builtin.is_some() { Value::Null } else { given.clone() },
        rules: compiled_rules,
        channels: compiler.channels,
        unassigned,
    })
}

#[derive(Default)]
struct Compiler {
    channels: Vec<String>,
    list_values: usize,
    regexes: usize,
}

impl Compiler {
    fn channel_id(&mut self, name: &str) -> u32 {
        match self.channels.iter().position(|c| c == name) {
            Some(i) => i as u32,
            None => {
                self.channels.push(name.to_owned());
                (self.channels.len() - 1) as u32
            }
        }
    }

    fn rule(&mut self, index: usize, rule: &Value) -> Result<Rule, AttributionError> {
        let path = format!("channel_rules[{index}]");
        let Value::Object(rule) = rule else {
            return Err(fault(&path, "a rule is an object with a `channel` and an optional `when`"));
        };
        if let Some(key) = rule.keys().find(|k| !matches!(k.as_str(), "channel" | "when")) {
            return Err(fault(&path, format!("unknown field {} (a rule has `channel` and `when`)", quoted(key))));
        }
        let channel = match rule.get("channel") {
            Some(Value::String(name)) => name.trim(),
            Some(_) => return Err(fault(&format!("{path}.channel"), "must be a string")),
            None => return Err(fault(&path, "names no `channel`")),
        };
        if channel.is_empty() {
            return Err(fault(&format!("{path}.channel"), "must not be empty"));
        }
        if channel.len() > MAX_CHANNEL_NAME_BYTES {
            return Err(fault(&format!("{path}.channel"), format!("longer than {MAX_CHANNEL_NAME_BYTES} bytes")));
        }
        let conditions = match rule.get("when") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(when)) => self.conditions(&format!("{path}.when"), when)?,
            Some(_) => {
                return Err(fault(
                    &format!("{path}.when"),
                    "must be an object of fields (source, medium, campaign, referrer)",
                ));
            }
        };
        Ok(Rule { channel: self.channel_id(channel), conditions })
    }

    fn conditions(&mut self, path: &str, when: &Map<String, Value>) -> Result<Vec<Condition>, AttributionError> {
        let mut conditions = Vec::new();
        for (name, operators) in when {
            let path = format!("{path}.{name}");
            let Some(field) = TouchField::parse(name) else {
                return Err(fault(&path, "unknown field (rules read source, medium, campaign and referrer)"));
            };
            // `null` is absent, as everywhere in a job spec.
            if operators.is_null() {
                continue;
            }
            let Value::Object(operators) = operators else {
                return Err(fault(&path, "must be an object of operators, e.g. {\"equals\": \"cpc\"}"));
            };
            let given: Vec<(&String, &Value)> = operators.iter().filter(|(_, value)| !value.is_null()).collect();
            if given.is_empty() {
                return Err(fault(&path, format!("names no operator (known: {})", OPERATORS.join(", "))));
            }
            for (operator, value) in given {
                let test = self.test(&format!("{path}.{operator}"), operator, value)?;
                conditions.push(Condition { field, test });
            }
        }
        Ok(conditions)
    }

    fn test(&mut self, path: &str, operator: &str, value: &Value) -> Result<Test, AttributionError> {
        if operator == "in" {
            let Value::Array(values) = value else { return Err(fault(path, "must be an array of strings")) };
            if values.is_empty() {
                return Err(fault(path, "must name at least one value"));
            }
            self.list_values += values.len();
            if self.list_values > MAX_LIST_VALUES {
                return Err(fault(
                    path,
                    format!("the `in` lists hold more than the {MAX_LIST_VALUES} values a rule set may have"),
                ));
            }
            let set = values.iter().map(|v| text(path, v).map(str::to_lowercase)).collect::<Result<_, _>>()?;
            return Ok(Test::In(set));
        }
        let value = text(path, value)?;
        Ok(match operator {
            "equals" => Test::Equals(value.to_lowercase()),
            "contains" => Test::Contains(value.to_lowercase()),
            "starts_with" => Test::StartsWith(value.to_lowercase()),
            "ends_with" => Test::EndsWith(value.to_lowercase()),
            "regex" if self.regexes == MAX_REGEXES => {
                return Err(fault(path, format!("more than the {MAX_REGEXES} regexes a rule set may have")));
            }
            "regex" => Test::Regex(
                RegexBuilder::new(value)
                    .case_insensitive(true)
                    .size_limit(MAX_REGEX_BYTES)
                    .dfa_size_limit(MAX_REGEX_BYTES)
                    .build()
                    .map_err(|e| fault(path, format!("not a valid regex: {}", first_line(&e.to_string()))))
                    .inspect(|_| self.regexes += 1)?,
            ),
            other => {
                return Err(fault(
                    path,
                    format!("{} is not an operator (known: {})", quoted(other), OPERATORS.join(", ")),
                ));
            }
        })
    }
}

/// A string operand, at most [`MAX_VALUE_BYTES`].
fn text<'v>(path: &str, value: &'v Value) -> Result<&'v str, AttributionError> {
    let Value::String(text) = value else { return Err(fault(path, "must be a string")) };
    if text.len() > MAX_VALUE_BYTES {
        return Err(fault(path, format!("longer than {MAX_VALUE_BYTES} bytes")));
    }
    Ok(text)
}

fn first_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

fn fault(path: &str, problem: impl Into<String>) -> AttributionError {
    AttributionError::option(path, problem)
}

/// Distinct touches remembered by one classifier, in bytes of their fields: past it the
/// memory is cleared and starts again (a file whose referrers are all different URLs must
/// not keep every one).
const MEMO_BYTES: usize = 16 << 20;

/// Applies rules to touch after touch, running them once per distinct touch: a file of
/// millions of rows has a few thousand distinct (source, medium, campaign, referrer)
/// tuples, so most rows cost one hash lookup.
pub struct ChannelClassifier {
    rules: ChannelRules,
    memo: FxHashMap<Box<[u8]>, u32>,
    key: Vec<u8>,
    memo_bytes: usize,
}

impl ChannelClassifier {
    pub fn new(rules: ChannelRules) -> ChannelClassifier {
        ChannelClassifier { rules, memo: FxHashMap::default(), key: Vec::new(), memo_bytes: 0 }
    }

    pub fn rules(&self) -> &ChannelRules {
        &self.rules
    }

    /// The touch's channel, as an index into the rules' [`ChannelRules::channels`].
    pub fn channel_index(&mut self, touch: &Touch<'_>) -> u32 {
        self.key.clear();
        for field in touch.fields() {
            self.key.extend_from_slice(&(field.len() as u32).to_le_bytes());
            self.key.extend_from_slice(field.as_bytes());
        }
        if let Some(&channel) = self.memo.get(self.key.as_slice()) {
            return channel;
        }
        let channel = self.rules.channel_index(touch);
        let cost = self.key.len() + 32;
        if self.memo_bytes + cost > MEMO_BYTES {
            self.memo.clear();
            self.memo_bytes = 0;
        }
        self.memo.insert(self.key.as_slice().into(), channel);
        self.memo_bytes += cost;
        channel
    }
}

/// The shape of `channel_rules` for the OpenAPI document (the type itself reads JSON by hand,
/// so that a fault names its rule and field in our words).
#[cfg(feature = "openapi")]
pub mod schema {
    #![allow(dead_code)]

    use serde::Serialize;

    /// `ga4` (Google Analytics 4's default channel group), or the rules inline (docs/channel-rules.md).
    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(untagged)]
    pub enum ChannelRulesSpec {
        Named(BuiltinRuleSet),
        Inline(Vec<ChannelRuleSpec>),
    }

    /// A built-in rule set.
    #[derive(Serialize, utoipa::ToSchema)]
    pub enum BuiltinRuleSet {
        #[serde(rename = "ga4")]
        Ga4,
    }

    /// One rule: the first rule whose conditions all hold names the touch's channel.
    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChannelRuleSpec {
        #[schema(min_length = 1, max_length = 1024)]
        pub channel: String,
        /// Absent: the rule matches every touch.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub when: Option<TouchConditions>,
    }

    /// Conditions on the touch's fields; all must hold.
    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct TouchConditions {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub source: Option<FieldTest>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub medium: Option<FieldTest>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub campaign: Option<FieldTest>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub referrer: Option<FieldTest>,
    }

    /// Operators on one field, compared case-insensitively; all named must hold.
    #[derive(Serialize, utoipa::ToSchema)]
    #[serde(deny_unknown_fields)]
    #[schema(min_properties = 1)]
    pub struct FieldTest {
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        pub equals: Option<String>,
        #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
        #[schema(min_items = 1)]
        pub one_of: Option<Vec<String>>,
        /// Matches anywhere in the value unless anchored with `^` and `$`.
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        pub regex: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        pub contains: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        pub starts_with: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[schema(max_length = 1024)]
        pub ends_with: Option<String>,
    }
}

#[cfg(test)]
mod tests;
