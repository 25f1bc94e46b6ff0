//! A document tree that keeps what the importer needs from YAML and JSON alike: every node's
//! line and, for YAML, its tag (CloudFormation's short forms `!Ref`, `!GetAtt`, ...).
//!
//! YAML goes through serde-saphyr (`Spanned<Tagged<_>>` gives the line and the tag of each
//! node). JSON goes through serde_json, which keeps no positions: the lines of a JSON document
//! are recovered by [`locate_json_lines`] for the mapping keys the report names.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One node: its value, its YAML tag (`!Ref`; `None` in JSON) and its 1-based line (0 when
/// unknown).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub tag: Option<String>,
    pub line: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Numbers kept as written (integers, or the text of a float).
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order.
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn new(value: Value, line: u32) -> Self {
        Self {
            value,
            tag: None,
            line,
        }
    }

    /// The value under `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned =
            serde_saphyr::Spanned::<serde_saphyr::Tagged<Value>>::deserialize(deserializer)?;
        let serde_saphyr::Tagged(value, tag) = spanned.value;
        Ok(Self {
            value,
            tag,
            line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML node")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
                Value::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                i64::try_from(v)
                    .map(Value::Int)
                    .or_else(|_| Ok(Value::Str(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
                Ok(Value::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(node) = seq.next_element()? {
                    items.push(node);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, node)) = map.next_entry::<KeyText, Node>()? {
                    entries.push((key.0, node));
                }
                Ok(Value::Map(entries))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A mapping key as text, whatever scalar YAML made of it (`80: x`, `true: y`).
struct KeyText(String);

impl<'de> Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = KeyText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a scalar mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<KeyText, E> {
                Ok(KeyText(v.to_owned()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<KeyText, E> {
                Ok(KeyText(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Alias replay limits, as for VPC definitions (config/parse.rs): templates reuse a few nodes,
/// never thousands.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 100_000,
            max_alias_expansions_per_anchor: 1_000,
            max_replay_stack_depth: 16,
        },
        // YAML 1.2 booleans: `yes`/`no`/`on` stay text, as in parameter values.
        strict_booleans: true,
        with_snippet: false,
    }
}

/// Parses a YAML document (tags and lines kept).
pub fn parse_yaml(text: &str) -> Result<Node, serde_saphyr::Error> {
    serde_saphyr::from_str_with_options(text, yaml_options())
}

/// Parses a JSON document; lines are those of each mapping key (see [`locate_json_lines`]).
pub fn parse_json(text: &str) -> Result<Node, serde_json::Error> {
    let value: serde_json::Value = serde_json::from_str(text)?;
    let lines = KeyLines::new(text);
    let mut cursor = 0;
    Ok(from_json(&value, 1, &lines, &mut cursor))
}

/// Whether a document looks like JSON (its first non-blank character opens an object or array).
pub fn looks_like_json(text: &str) -> bool {
    matches!(text.trim_start().chars().next(), Some('{' | '['))
}

/// The positions of the quoted keys (`"Name":`) of a JSON text, in document order. serde_json
/// returns an object's keys sorted (no `preserve_order`), so the line of a key is found by
/// searching forward from its object's position: exact for the keys the report names (logical
/// IDs, list items), approximate for a key repeated inside an earlier sibling.
struct KeyLines {
    /// (byte offset, line) of every `"` that starts a key.
    starts: Vec<(usize, u32)>,
    text: String,
}

impl KeyLines {
    fn new(text: &str) -> Self {
        let mut starts = Vec::new();
        let bytes = text.as_bytes();
        let mut line = 1u32;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => line += 1,
                b'"' => {
                    let start = i;
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' {
                        if bytes[i] == b'\\' {
                            i += 1;
                        }
                        i += 1;
                    }
                    let mut j = i + 1;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j] == b':' {
                        starts.push((start, line));
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Self {
            starts,
            text: text.to_owned(),
        }
    }

    /// The first key `key` at or after byte `from`: (offset, line).
    fn find(&self, key: &str, from: usize) -> Option<(usize, u32)> {
        let quoted = serde_json::to_string(key).ok()?;
        let first = self.starts.partition_point(|(o, _)| *o < from);
        self.starts[first..]
            .iter()
            .find(|(o, _)| self.text[*o..].starts_with(&quoted))
            .copied()
    }
}

fn from_json(value: &serde_json::Value, line: u32, lines: &KeyLines, cursor: &mut usize) -> Node {
    let value = match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s.clone()),
        serde_json::Value::Array(items) => Value::Seq(
            items
                .iter()
                .map(|v| {
                    let mut item = from_json(v, line, lines, cursor);
                    // An object in a list has no key of its own: its line is its first key's.
                    if let Value::Map(entries) = &item.value {
                        item.line = entries.iter().map(|(_, n)| n.line).min().unwrap_or(line);
                    }
                    item
                })
                .collect(),
        ),
        serde_json::Value::Object(map) => {
            let start = *cursor;
            let mut end = start;
            let mut entries = Vec::new();
            for (key, v) in map {
                // Keys come back sorted, not in document order: search each from the object's
                // start, then continue inside it; the next sibling starts after the furthest.
                let (offset, key_line) = lines.find(key, start).unwrap_or((start, line));
                *cursor = offset + 1;
                entries.push((key.clone(), from_json(v, key_line, lines, cursor)));
                end = end.max(*cursor);
            }
            *cursor = end;
            Value::Map(entries)
        }
    };
    Node::new(value, line)
}
