//! Hides the secrets of a connection string before it reaches a log, an error, `Debug`
//! output or `kamiyo config`. Both forms libpq (and so an operator's `DATABASE_URL`)
//! uses are read:
//!
//! - URL form, `postgres://user:password@host/db?sslpassword=...`: the password of the
//!   user info, and the value of every secret query parameter;
//! - keyword/value form, `host=db password=secret` or `password = 'it\'s quoted'`: the
//!   value of every secret keyword, quoted or not.
//!
//! A parameter is secret when its name holds `pass` (`password`, `sslpassword`,
//! `passfile`), `secret` or `token`. A `dbname` that is itself a connection string
//! (libpq expands one holding `=` or a URL) is hidden whole when it holds a secret.
//!
//! Malformed text is where secrets leak (a password with a space and no quotes, a `@`
//! or `&` not percent-encoded), so the rules lean to hiding: a URL's password runs to
//! its *last* `@`, the query is read from the first `?` (even one inside the password),
//! and a word with no `=` or a pair under a name libpq does not know is hidden whole,
//! being most likely the rest of a value that was cut in two. The price is that a URL
//! whose query holds a `@` may show less than its host.

use std::ops::Range;

const HIDDEN: &str = "***";

/// `conn` with every secret replaced by `***`; see the module documentation.
pub fn redact(conn: &str) -> String {
    let secrets = match url_authority_start(conn) {
        Some(start) => url_secrets(conn, start),
        None => keyword_secrets(conn),
    };
    hide(conn, secrets)
}

/// Every keyword libpq reads (PostgreSQL 18) and tokio-postgres's `keepalives_retries`.
/// A `name=value` pair under any other name is hidden whole: both drivers refuse it, so
/// it is most likely the rest of a value cut at a space or `&` (`password=two words=x`).
const KEYWORDS: &[&str] = &[
    "application_name",
    "channel_binding",
    "client_encoding",
    "connect_timeout",
    "dbname",
    "fallback_application_name",
    "gssdelegation",
    "gssencmode",
    "gsslib",
    "host",
    "hostaddr",
    "keepalives",
    "keepalives_count",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "krbsrvname",
    "load_balance_hosts",
    "max_protocol_version",
    "min_protocol_version",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_issuer",
    "oauth_scope",
    "options",
    "passfile",
    "password",
    "port",
    "replication",
    "require_auth",
    "requirepeer",
    "requiressl",
    "service",
    "ssl_max_protocol_version",
    "ssl_min_protocol_version",
    "sslcert",
    "sslcertmode",
    "sslcompression",
    "sslcrl",
    "sslcrldir",
    "sslkey",
    "sslkeylogfile",
    "sslmode",
    "sslnegotiation",
    "sslpassword",
    "sslrootcert",
    "sslsni",
    "target_session_attrs",
    "tcp_user_timeout",
    "user",
];

fn is_keyword(name: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(name))
}

/// The driver's reason a connection string does not parse, with nothing of the string
/// in it. tokio-postgres quotes an unknown option's name and the character it did not
/// expect, both taken from the string: with a password's quoting gone wrong
/// (`password=two words=x`) either can be a piece of the password. Quoted words other
/// than libpq's keywords and the `=` or `'` it expected are replaced by `***`.
pub fn parse_error_message(error: &tokio_postgres::Error) -> String {
    // The driver's `Display` says only "invalid connection string"; the reason is its
    // source.
    let mut text = error.to_string();
    if let Some(reason) = std::error::Error::source(error) {
        text = format!("{text}: {reason}");
    }
    text.split('`')
        .enumerate()
        .map(|(i, part)| {
            let quoted = i % 2 == 1;
            if quoted && !(KEYWORDS.contains(&part) || part == "=" || part == "'") {
                HIDDEN
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["pass", "secret", "token"]
        .iter()
        .any(|word| name.contains(word))
}

/// libpq reads a `dbname` holding `=` or a URL as a connection string of its own.
fn dbname_hides_a_secret(value: &str) -> bool {
    (value.contains('=') || url_authority_start(value).is_some()) && redact(value) != value
}

/// Where the authority begins when `text` is in URL form (`scheme://`, or `sqlite:`
/// without slashes); `None` for the keyword/value form.
fn url_authority_start(text: &str) -> Option<usize> {
    let offset = text.len() - text.trim_start().len();
    let rest = &text[offset..];
    let scheme_len = rest.find(':')?;
    let scheme = &rest[..scheme_len];
    let mut chars = scheme.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid {
        return None;
    }
    if rest[scheme_len..].starts_with("://") {
        Some(offset + scheme_len + 3)
    } else if scheme.eq_ignore_ascii_case("sqlite") {
        Some(offset + scheme_len + 1)
    } else {
        None
    }
}

fn url_secrets(url: &str, authority_start: usize) -> Vec<Range<usize>> {
    let scheme = url[..authority_start].trim_start().to_ascii_lowercase();
    let libpq = scheme.starts_with("postgres://") || scheme.starts_with("postgresql://");
    let mut secrets = Vec::new();
    // To the last `@`, not the first: drivers accept a password holding `@`, `/` or `?`.
    if let Some(at) = url.rfind('@').filter(|at| *at > authority_start) {
        if let Some(colon) = url[authority_start..at].find(':') {
            secrets.push(authority_start + colon + 1..at);
        }
    }
    // From the first `?`, even one inside the password: see `query_secrets`.
    if let Some(question_mark) = url[authority_start..].find('?') {
        query_secrets(
            url,
            authority_start + question_mark + 1,
            libpq,
            &mut secrets,
        );
    }
    secrets
}

/// Reads `name=value` pairs separated by `&` from `start`. A name holding `?` means the
/// reading began at a `?` inside the password: the name is what follows its last `?`.
/// `libpq`: the URL is PostgreSQL's, whose query takes libpq's keywords only.
fn query_secrets(url: &str, start: usize, libpq: bool, secrets: &mut Vec<Range<usize>>) {
    let mut pair_start = start;
    for pair in url[start..].split('&') {
        let pair_end = pair_start + pair.len();
        let this_start = std::mem::replace(&mut pair_start, pair_end + 1);
        let Some((name, value)) = pair.split_once('=') else {
            secrets.push(this_start..pair_end);
            continue;
        };
        let (name, name_start) = match name.rfind('?') {
            Some(q) => (&name[q + 1..], this_start + q + 1),
            None => (name, this_start),
        };
        let value_range = pair_end - value.len()..pair_end;
        let name = percent_decode(name);
        if libpq && !is_keyword(&name) {
            secrets.push(name_start..pair_end);
        } else if is_secret_name(&name)
            || (name == "dbname" && dbname_hides_a_secret(&percent_decode(value)))
        {
            secrets.push(value_range);
        }
    }
}

/// libpq's keyword/value syntax: `keyword = value` pairs separated by whitespace; a
/// value is either a run of non-space characters or single-quoted, and `\` escapes the
/// next character in both.
fn keyword_secrets(text: &str) -> Vec<Range<usize>> {
    let mut secrets = Vec::new();
    let mut cursor = Cursor { text, pos: 0 };
    loop {
        cursor.skip_whitespace();
        if cursor.peek().is_none() {
            return secrets;
        }
        let keyword_start = cursor.pos;
        cursor.take_while(|c| !c.is_whitespace() && c != '=');
        let keyword = &text[keyword_start..cursor.pos];
        let keyword_end = cursor.pos;
        cursor.skip_whitespace();
        if cursor.peek() != Some('=') {
            secrets.push(keyword_start..keyword_end);
            continue;
        }
        cursor.bump();
        cursor.skip_whitespace();
        let value_start = cursor.pos;
        let value = cursor.value();
        if !is_keyword(keyword) {
            secrets.push(keyword_start..cursor.pos);
        } else if is_secret_name(keyword) || (keyword == "dbname" && dbname_hides_a_secret(&value))
        {
            secrets.push(value_start..cursor.pos);
        }
    }
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }

    fn skip_whitespace(&mut self) {
        self.take_while(char::is_whitespace);
    }

    /// Reads a value, quoted or not, and returns it unescaped. An unterminated quote runs
    /// to the end of the text.
    fn value(&mut self) -> String {
        let mut value = String::new();
        let quoted = self.peek() == Some('\'');
        if quoted {
            self.bump();
        }
        while let Some(c) = self.peek() {
            if !quoted && c.is_whitespace() {
                break;
            }
            self.bump();
            match c {
                '\\' => value.extend(self.bump()),
                '\'' if quoted => break,
                c => value.push(c),
            }
        }
        value
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                decoded.push(byte);
                i += 3;
            }
            (byte, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// `text` with each range (merged where they overlap or touch) replaced by `***`.
fn hide(text: &str, mut ranges: Vec<Range<usize>>) -> String {
    ranges.retain(|r| !r.is_empty());
    ranges.sort_by_key(|r| r.start);
    let mut out = String::with_capacity(text.len());
    let mut shown_from = 0;
    let mut ranges = ranges.into_iter().peekable();
    while let Some(mut range) = ranges.next() {
        while let Some(next) = ranges.next_if(|next| next.start <= range.end) {
            range.end = range.end.max(next.end);
        }
        out.push_str(&text[shown_from..range.start]);
        out.push_str(HIDDEN);
        shown_from = range.end;
    }
    out.push_str(&text[shown_from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(conn: &str) -> String {
        match conn.parse::<tokio_postgres::Config>() {
            Ok(_) => panic!("{conn} parsed"),
            Err(e) => parse_error_message(&e),
        }
    }

    #[test]
    fn a_url_password_is_hidden() {
        assert_eq!(
            redact("postgres://kamiyo:s3cr3t@db.example:5432/kamiyo"),
            "postgres://kamiyo:***@db.example:5432/kamiyo"
        );
    }

    #[test]
    fn url_and_query_passwords_are_hidden_when_the_query_holds_at_signs() {
        let shown = redact("postgres://u:pw@db/k?application_name=a@b&password=x@y");
        assert!(!shown.contains("pw") && !shown.contains("x@y"), "{shown}");
        assert!(!shown.contains('y'), "{shown}");
    }

    #[test]
    fn every_secret_query_parameter_of_a_url_is_hidden() {
        for name in [
            "password",
            "PASSWORD",
            "sslpassword",
            "passfile",
            "pass%77ord",
        ] {
            let shown = redact(&format!(
                "postgres://db.example/kamiyo?user=k&{name}=hunter2&sslmode=require"
            ));
            assert_eq!(
                shown,
                format!("postgres://db.example/kamiyo?user=k&{name}=***&sslmode=require")
            );
        }
    }

    #[test]
    fn a_query_password_holding_an_at_sign_or_ampersand_is_hidden() {
        for conn in [
            "postgres://db/k?password=hun@ter2",
            "postgres://db/k?password=hunter2&ter3&sslmode=require",
        ] {
            let shown = redact(conn);
            assert!(
                !shown.contains("ter2") && !shown.contains("ter3"),
                "{shown}"
            );
        }
    }

    #[test]
    fn a_url_dbname_that_is_a_connection_string_with_a_password_is_hidden() {
        let shown = redact("postgres://db/?dbname=postgres%3A%2F%2Fu%3Ahunter2%40h%2Fk");
        assert_eq!(shown, "postgres://db/?dbname=***");
        assert_eq!(
            redact("postgres://db/?dbname=kamiyo"),
            "postgres://db/?dbname=kamiyo"
        );
    }

    #[test]
    fn a_keyword_form_password_is_hidden() {
        assert_eq!(
            redact("host=db.example port=5432 user=kamiyo password=s3cr3t dbname=kamiyo"),
            "host=db.example port=5432 user=kamiyo password=*** dbname=kamiyo"
        );
    }

    #[test]
    fn a_quoted_keyword_form_password_with_spaces_and_escaped_quotes_is_hidden() {
        let conn = r"host=db password='it\'s a \\ secret' dbname=kamiyo";
        assert_eq!(redact(conn), "host=db password=*** dbname=kamiyo");
        // The same string is one password to the driver: the rule reads it as libpq does.
        let config: tokio_postgres::Config = conn.parse().unwrap();
        assert_eq!(config.get_password(), Some(&br"it's a \ secret"[..]));
        assert_eq!(config.get_dbname(), Some("kamiyo"));
    }

    #[test]
    fn spaces_around_the_equals_sign_do_not_reveal_the_password() {
        assert_eq!(
            redact("host = db  password =  s3cr3t\tuser= kamiyo"),
            "host = db  password =  ***\tuser= kamiyo"
        );
        assert_eq!(
            redact("host=db password = 'two words'"),
            "host=db password = ***"
        );
    }

    #[test]
    fn every_secret_keyword_is_hidden_and_others_are_kept() {
        assert_eq!(
            redact("host=db sslpassword=k3y passfile=/home/k/.pgpass sslmode=verify-full"),
            "host=db sslpassword=*** passfile=*** sslmode=verify-full"
        );
    }

    #[test]
    fn an_unquoted_password_with_a_space_is_hidden_whole() {
        let shown = redact("host=db password=two words dbname=kamiyo");
        assert_eq!(shown, "host=db password=*** *** dbname=kamiyo");
        let shown = redact("host=db password=two words=x dbname=kamiyo");
        assert_eq!(shown, "host=db password=*** *** dbname=kamiyo");
        let shown = redact("postgres://db/k?password=two&words=x&sslmode=require");
        assert_eq!(shown, "postgres://db/k?password=***&***&sslmode=require");
    }

    #[test]
    fn an_unterminated_quoted_password_is_hidden_to_the_end() {
        assert_eq!(
            redact("host=db password='never closed dbname=kamiyo"),
            "host=db password=***"
        );
    }

    #[test]
    fn a_keyword_dbname_that_is_a_connection_string_with_a_password_is_hidden() {
        assert_eq!(
            redact("dbname='host=db password=s3cr3t' user=k"),
            "dbname=*** user=k"
        );
        assert_eq!(
            redact("dbname=postgres://u:s3cr3t@db/k user=k"),
            "dbname=*** user=k"
        );
    }

    #[test]
    fn strings_without_secrets_are_unchanged() {
        for conn in [
            "postgres://root@127.0.0.1/test",
            "postgres://db.example:5432/kamiyo?sslmode=require&application_name=kamiyo",
            "host=db port=5432 user=kamiyo dbname=kamiyo",
            "sqlite://kamiyo.db",
            "sqlite:kamiyo.db",
            "sqlite:///var/lib/kamiyo/kamiyo.db?mode=rwc",
            "",
        ] {
            assert_eq!(redact(conn), conn);
        }
    }

    #[test]
    fn the_driver_error_for_a_bad_keyword_form_string_does_not_contain_the_password() {
        for (conn, expected) in [
            (
                "host=db password=two words=x",
                "invalid connection string: unknown option `***`",
            ),
            (
                "host=db password=two words port=5432",
                "invalid connection string: unexpected character at byte 27: \
                 expected `=` but got `***`",
            ),
            (
                "host=db password='unterminated secret",
                "invalid connection string: unterminated quoted connection parameter value",
            ),
        ] {
            let shown = parse_error(conn);
            assert_eq!(shown, expected, "{conn}");
        }
    }

    #[test]
    fn the_driver_itself_quotes_a_piece_of_the_password() {
        let e = "host=db password=two words=x"
            .parse::<tokio_postgres::Config>()
            .unwrap_err();
        let reason = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(reason.as_deref(), Some("unknown option `words`"));
    }

    #[test]
    fn the_driver_error_keeps_its_own_option_names() {
        assert_eq!(
            parse_error("host=db port=many password=s3cr3t"),
            "invalid connection string: invalid value for option `port`"
        );
        assert_eq!(
            parse_error("postgres://u:s3cr3t@db/k?sslmode=sometimes"),
            "invalid connection string: invalid value for option `sslmode`"
        );
    }
}
