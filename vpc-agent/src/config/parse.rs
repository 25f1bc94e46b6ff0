//! YAML loading with serde-saphyr: one document, no duplicate keys, no merge keys, bounded alias
//! expansion (alias bombs), unknown keys rejected by the model. A failure becomes one
//! [`Diagnostic`] with the line and column serde-saphyr reports and the path
//! `serde_path_to_error` tracked up to the failing node.

use std::borrow::Cow;

use serde_path_to_error::Segment;
use serde_saphyr::{DuplicateKeyPolicy, Error as YamlError, MergeKeyPolicy, MessageFormatter};

use super::{
    error::Diagnostic,
    model::{ConfigFile, Pos},
};

/// Alias replay limits: a VPC file legitimately reuses a few rule lists, never thousands of
/// nodes, so these stop a "billion laughs" document long before it costs memory or time.
const MAX_REPLAYED_EVENTS: usize = 10_000;
const MAX_EXPANSIONS_PER_ANCHOR: usize = 1_000;
const MAX_REPLAY_DEPTH: usize = 16;

/// Size limits of the document, in proportion to the largest file read
/// ([`super::MAX_FILE_BYTES`]) rather than the parser's defaults (250,000 nodes: about 50,000
/// routes, while one generation holds 131,072). A node takes at least a few bytes of text, so
/// these only matter for files that fit the byte limit.
const MAX_NODES: usize = 4 << 20;
const MAX_EVENTS: usize = 8 << 20;
const MAX_SCALAR_BYTES: usize = super::MAX_FILE_BYTES as usize;

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES,
            max_events: MAX_EVENTS,
            max_total_scalar_bytes: MAX_SCALAR_BYTES,
        },
        duplicate_keys: DuplicateKeyPolicy::Error,
        merge_keys: MergeKeyPolicy::Error,
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_REPLAYED_EVENTS,
            max_alias_expansions_per_anchor: MAX_EXPANSIONS_PER_ANCHOR,
            max_replay_stack_depth: MAX_REPLAY_DEPTH,
        },
        strict_booleans: true,
        reject_unsupported_tags: true,
        with_snippet: false,
    }
}

/// Parses the text of a VPC definition into the model (no semantic checks).
pub fn parse_str(text: &str) -> Result<ConfigFile, Diagnostic> {
    let mut path = String::new();
    serde_saphyr::with_deserializer_from_str_with_options(text, options(), |de| {
        serde_path_to_error::deserialize::<_, ConfigFile>(de).map_err(|e| {
            path = format_path(e.path());
            e.into_inner()
        })
    })
    .map_err(|e| to_diagnostic(&e, path, text))
}

/// Keys `Spanned` (behind [`super::model::Loc`]) uses internally: not part of the user's path.
const SPANNED_KEYS: [&str; 4] = [
    "__serde_saphyr_private_spanned",
    "value",
    "referenced",
    "defined",
];

/// `vpcs[0].subnets[2].cidr` from the tracked serde path.
fn format_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if SPANNED_KEYS.contains(&key.as_str()) {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// The error that carries the message (wrappers only add snippets or alias locations).
fn innermost(err: &YamlError) -> &YamlError {
    match err {
        YamlError::WithSnippet { error, .. } | YamlError::AliasError { error, .. } => {
            innermost(error)
        }
        other => other,
    }
}

/// What a budget breach exceeded, in words.
fn budget_breach(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Nodes { nodes } => format!("{nodes} nodes"),
        B::Events { events } => format!("{events} parser events"),
        B::ScalarBytes { total_scalar_bytes } => format!("{total_scalar_bytes} bytes of scalars"),
        other => format!("{other:?}"),
    }
}

/// The innermost flow collection (`[` or `{`) still open at `end`: where a syntax error
/// inside it began. Quotes and comments are skipped; block scalars are not recognised (a
/// bracket in one may be reported, with the parser's own message and position kept).
fn unclosed_flow(text: &str, end: Pos) -> Option<(char, Pos)> {
    let mut open: Vec<(char, Pos)> = Vec::new();
    let mut quote: Option<char> = None;
    for (l, line) in text.lines().enumerate() {
        let l = u32::try_from(l + 1).unwrap_or(u32::MAX);
        let mut prev = ' ';
        for (c, ch) in line.chars().enumerate() {
            let here = Pos::new(l, u32::try_from(c + 1).unwrap_or(u32::MAX));
            if (here.line, here.column) >= (end.line, end.column) {
                return open.pop();
            }
            match (quote, ch) {
                (Some('\''), '\'') | (Some('"'), '"') if prev != '\\' => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(ch),
                (None, '#') if prev.is_whitespace() => break,
                (None, '[' | '{') => open.push((ch, here)),
                (None, ']' | '}') => {
                    open.pop();
                }
                _ => {}
            }
            prev = ch;
        }
    }
    open.pop()
}

fn to_diagnostic(err: &YamlError, path: String, text: &str) -> Diagnostic {
    let inner = innermost(err);
    let mut pos = err
        .location()
        .or_else(|| inner.location())
        .map(|l| Pos::from_location(&l))
        .unwrap_or(Pos::new(1, 1));
    let mut message = match inner {
        YamlError::InvalidScalar { ty, .. } if ty.starts_with(['i', 'u']) => {
            Cow::Owned(format!("expected an integer ({ty})"))
        }
        YamlError::Budget { breach, .. } => Cow::Owned(format!(
            "the document is too large for a definition ({}; at most {MAX_NODES} nodes, \
             {MAX_EVENTS} parser events, {MAX_SCALAR_BYTES} bytes of scalars)",
            budget_breach(breach)
        )),
        _ => serde_saphyr::DefaultMessageFormatter.format_message(inner),
    };
    // A syntax error inside a flow collection is reported where the collection opened: that
    // is where the user left it unclosed, not where the parser gave up.
    let syntax = matches!(
        inner,
        YamlError::ExternalMessage { source, .. }
            if matches!(**source, serde_saphyr::ExternalMessageSource::Parser(_))
    ) || matches!(inner, YamlError::Eof { .. });
    if syntax
        && let Some((bracket, opened)) = unclosed_flow(text, pos)
        && opened.line < pos.line
    {
        message = Cow::Owned(format!(
            "unclosed '{bracket}' (the parser stopped at {pos}: {message})"
        ));
        pos = opened;
    }
    // The message may quote the file's text: keep control characters out of the report.
    let message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Diagnostic::new(pos, path, message)
}
