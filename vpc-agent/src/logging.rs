//! The agent's log lines (stderr), one event a line, in logfmt:
//!
//! ```text
//! ts=2026-12-01T23:15:40.123Z level=info msg="attached" program=vpc_xdp interface=r-web
//! ```
//!
//! Under systemd (stderr is the journal stream `$JOURNAL_STREAM` names) the line starts with
//! the syslog priority instead of the timestamp, which journald strips and stores as
//! `PRIORITY=` (so `journalctl -p err` finds errors): `<3>level=error msg="reload: ..."`.
//!
//! Call sites write `"free text key=value key=value"`: the text before the first `key=` becomes
//! `msg`, each value runs to the next ` key=` and is quoted when logfmt needs it.

use std::fmt::Write as _;

use log::Level;

/// The syslog priority of a level (sd-daemon(3): `<3>` error ... `<7>` debug).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "error",
        Level::Warn => "warn",
        Level::Info => "info",
        Level::Debug => "debug",
        Level::Trace => "trace",
    }
}

/// Whether `word` (the text before an `=`) is a logfmt key the call sites use.
fn is_key(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.')
}

/// The `(start, '=')` byte offsets of the words of `message` that begin with `key=`.
fn key_starts(message: &str) -> Vec<(usize, usize)> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for word in message.split(' ') {
        if let Some(eq) = word.find('=')
            && is_key(&word[..eq])
        {
            starts.push((offset, offset + eq));
        }
        offset += word.len() + 1;
    }
    starts
}

/// `value`, quoted when logfmt needs it (empty, spaces, `"`, `=`, control characters).
fn push_value(out: &mut String, value: &str) {
    let bare = !value.is_empty()
        && value
            .chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && c != '\u{7f}');
    if bare {
        out.push_str(value);
        return;
    }
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `level=... msg=... key=value...` for one event (no timestamp, no priority).
pub fn logfmt(level: Level, message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 24);
    out.push_str("level=");
    out.push_str(level_name(level));
    let starts = key_starts(message);
    let text_end = starts.first().map_or(message.len(), |&(s, _)| s);
    let text = message[..text_end].trim_end();
    // A message that is all pairs still has a `msg`: its first key names the event.
    out.push_str(" msg=");
    push_value(&mut out, text.strip_suffix(':').unwrap_or(text));
    for (n, &(start, eq)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(message.len(), |&(s, _)| s);
        let key = &message[start..eq];
        if key == "level" || key == "msg" || key == "ts" {
            continue;
        }
        out.push(' ');
        out.push_str(key);
        out.push('=');
        push_value(&mut out, message[eq + 1..end].trim_end());
    }
    out
}

/// Whether `journal_stream` (`$JOURNAL_STREAM`, `DEVICE:INODE`) names the file `dev`/`ino`.
pub fn is_journal_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// Whether stderr is connected to the journal (systemd.exec(5), `$JOURNAL_STREAM`).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2")
        .is_ok_and(|m| is_journal_stream(&stream.to_string_lossy(), m.dev(), m.ino()))
}

/// Installs the logger: level `info` unless `RUST_LOG` says otherwise.
pub fn init() {
    let journal = stderr_is_journal();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |buf, record| {
            use std::io::Write as _;
            let line = logfmt(record.level(), &record.args().to_string());
            if journal {
                writeln!(buf, "<{}>{line}", priority(record.level()))
            } else {
                writeln!(buf, "ts={} {line}", buf.timestamp_millis())
            }
        })
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A strict logfmt reader: `key=value` pairs, values bare or quoted with `\"`/`\\` escapes.
    fn parse(line: &str) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut rest = line;
        while !rest.is_empty() {
            let eq = rest
                .find('=')
                .unwrap_or_else(|| panic!("no `=` in {rest:?}"));
            let key = &rest[..eq];
            assert!(is_key(key), "bad key {key:?} in {line:?}");
            rest = &rest[eq + 1..];
            let mut value = String::new();
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next() {
                        Some((i, '"')) => break i,
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => panic!("dangling escape in {line:?}"),
                        },
                        Some((_, c)) => value.push(c),
                        None => panic!("unterminated quote in {line:?}"),
                    }
                };
                rest = &quoted[end + 1..];
            } else {
                let end = rest.find(' ').unwrap_or(rest.len());
                value.push_str(&rest[..end]);
                assert!(!value.contains(['"', '=']), "bare value {value:?}");
                rest = &rest[end..];
            }
            pairs.push((key.to_owned(), value));
            assert!(
                rest.is_empty() || rest.starts_with(' '),
                "pairs not space-separated in {line:?}"
            );
            rest = rest.trim_start_matches(' ');
        }
        pairs
    }

    fn get<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
        &pairs.iter().find(|(k, _)| k == key).expect(key).1
    }

    #[test]
    fn messages_become_level_msg_and_pairs() {
        let line = logfmt(
            Level::Info,
            "attached program=vpc_xdp interface=r-web xdp_mode=none (TC path: virtual device)",
        );
        assert_eq!(
            line,
            "level=info msg=attached program=vpc_xdp interface=r-web \
             xdp_mode=\"none (TC path: virtual device)\""
        );
        let pairs = parse(&line);
        assert_eq!(get(&pairs, "xdp_mode"), "none (TC path: virtual device)");
    }

    #[test]
    fn free_text_with_quotes_and_colons_is_one_msg() {
        let text = "reload: vpc.yaml:13:5: vpcs[0]: unknown field `x`, expected \"name\"";
        let line = logfmt(Level::Error, text);
        let pairs = parse(&line);
        assert_eq!(get(&pairs, "level"), "error");
        assert_eq!(get(&pairs, "msg"), text);
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn values_may_contain_equals_and_paths() {
        let line = logfmt(
            Level::Warn,
            "flow log: records lost lost=3 reason=No space left (os error 28) path=/var/log/a=b",
        );
        let pairs = parse(&line);
        assert_eq!(get(&pairs, "msg"), "flow log: records lost");
        assert_eq!(get(&pairs, "lost"), "3");
        assert_eq!(get(&pairs, "reason"), "No space left (os error 28)");
        assert_eq!(get(&pairs, "path"), "/var/log/a=b");
    }

    #[test]
    fn reserved_keys_are_not_repeated_and_empty_values_quoted() {
        let line = logfmt(Level::Debug, "x level=9 msg=y empty=");
        assert_eq!(line, "level=debug msg=x empty=\"\"");
        parse(&line);
    }

    #[test]
    fn priorities_are_syslog() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
    }

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(is_journal_stream("8:1234", 8, 1234));
        assert!(!is_journal_stream("8:1234", 8, 1235));
        assert!(!is_journal_stream("garbage", 8, 1234));
    }
}
