//! Statement fingerprints: the same statement with other literal values, another IN-list
//! length, other whitespace or keyword case gets the same normalised text and the same
//! fingerprint, in every process and after every restart (a fixed hash, never a
//! per-process salted one). Literal values never survive normalisation, so parameter
//! values are never stored.

/// A normalised statement and its stable identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 64-bit FNV-1a of `normalized`, as 16 hex digits.
    pub id: String,
    pub normalized: String,
    /// `SELECT exploits`: operation and first table, a label of bounded cardinality.
    pub summary: String,
}

impl Fingerprint {
    pub fn of(sql: &str) -> Fingerprint {
        let normalized = normalize(sql);
        Fingerprint {
            id: format!("{:016x}", fnv1a(normalized.as_bytes())),
            summary: summarize(&normalized),
            normalized,
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Lower-cases words outside quotes, turns literals and bind parameters into `?`,
/// drops comments, folds whitespace, and collapses `IN (?, ?, ...)` and multi-row
/// `VALUES (...), (...)` to one element.
pub fn normalize(sql: &str) -> String {
    let tokens = tokenize(sql);
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    for token in tokens {
        out.push(token);
        collapse_lists(&mut out);
    }
    let mut text = String::with_capacity(sql.len());
    for (i, token) in out.iter().enumerate() {
        if i > 0 && needs_space(&out[i - 1], token) {
            text.push(' ');
        }
        text.push_str(token);
    }
    text
}

fn needs_space(previous: &str, next: &str) -> bool {
    !(previous == "("
        || previous == "."
        || next == ")"
        || next == ","
        || next == "."
        || next == "(" && is_word(previous) && !is_keyword_before_paren(previous)
        || next == ";")
}

fn is_word(token: &str) -> bool {
    token
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '"')
}

/// Keywords that take a parenthesised list after a space (`in (`, `values (`), as
/// opposed to function calls (`count(`).
fn is_keyword_before_paren(token: &str) -> bool {
    matches!(
        token,
        "in" | "values"
            | "as"
            | "and"
            | "or"
            | "not"
            | "exists"
            | "on"
            | "using"
            | "from"
            | "join"
            | "into"
            | "where"
            | "select"
            | "set"
            | "over"
            | "filter"
            | "within"
    )
}

/// After each pushed token: `in ( ? , ? , ... )` becomes `in (...)`, and
/// `values (...) , (...)` keeps one row.
fn collapse_lists(out: &mut Vec<String>) {
    let n = out.len();
    if n == 0 || out[n - 1] != ")" {
        return;
    }
    let Some(open) = out.iter().rposition(|t| t == "(") else {
        return;
    };
    let inner = &out[open + 1..n - 1];
    let only_placeholders = !inner.is_empty()
        && inner
            .iter()
            .enumerate()
            .all(|(i, t)| if i % 2 == 0 { t == "?" } else { t == "," });
    if !only_placeholders {
        return;
    }
    let before = open.checked_sub(1).map(|i| out[i].as_str());
    if before == Some("in") {
        out.truncate(open + 1);
        out.push("...".into());
        out.push(")".into());
    } else if before == Some(",") && open >= 2 {
        // `values (?, ?) , (?, ?)`: drop the repeated row if the one before is the same.
        let row: Vec<String> = out[open..].to_vec();
        let previous_end = open - 1;
        if previous_end >= row.len() && out[previous_end - row.len()..previous_end] == row[..] {
            out.truncate(open - 1);
        }
    }
}

fn tokenize(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '\''
            || ((c == 'e' || c == 'E' || c == 'x' || c == 'X' || c == 'b' || c == 'B')
                && next == Some('\''))
        {
            if c != '\'' {
                i += 1;
            }
            i = skip_quoted(&chars, i, '\'');
            tokens.push("?".into());
        } else if c == '"' || c == '`' {
            let end = skip_quoted(&chars, i, c);
            tokens.push(chars[i..end.min(chars.len())].iter().collect());
            i = end;
        } else if c == '$' && next.is_some_and(|n| n.is_ascii_digit()) {
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push("?".into());
        } else if c == '$' {
            // Dollar quoting: $$...$$ or $tag$...$tag$.
            let tag_end = chars[i + 1..]
                .iter()
                .position(|&ch| ch == '$')
                .map(|p| i + 1 + p);
            match tag_end {
                Some(end)
                    if chars[i + 1..end]
                        .iter()
                        .all(|ch| ch.is_alphanumeric() || *ch == '_') =>
                {
                    let tag: String = chars[i..=end].iter().collect();
                    let body_start = end + 1;
                    let rest: String = chars[body_start..].iter().collect();
                    let close = rest.find(&tag).map_or(chars.len(), |p| {
                        body_start + rest[..p].chars().count() + tag.chars().count()
                    });
                    tokens.push("?".into());
                    i = close;
                }
                _ => {
                    tokens.push("$".into());
                    i += 1;
                }
            }
        } else if c == '?'
            || (c == ':' && next.is_some_and(|n| n.is_ascii_alphabetic() || n == '_'))
        {
            // ?, ?1 and :name bind parameters; `::` casts never get here (the second
            // character of `::` is not a letter).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push("?".into());
        } else if c.is_ascii_digit() || (c == '.' && next.is_some_and(|n| n.is_ascii_digit())) {
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                i += 1;
            }
            tokens.push("?".into());
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect::<String>().to_lowercase();
            tokens.push(if word == "true" || word == "false" {
                "?".into()
            } else {
                word
            });
        } else if c == '-'
            && next.is_some_and(|n| n.is_ascii_digit())
            && tokens.last().is_none_or(|t| !is_value_end(t))
        {
            // A negative number literal, not a subtraction.
            i += 1;
        } else {
            // Operators: keep multi-character ones together (<=, <>, ::, ||, ->>).
            let start = i;
            i += 1;
            while i < chars.len() && "<>=!:|&~^#-@".contains(chars[i]) && "<>=!:|&~^#-@".contains(c)
            {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    tokens
}

fn is_value_end(token: &str) -> bool {
    token == "?"
        || token == ")"
        || is_word(token)
            && !is_keyword_before_paren(token)
            && token != "then"
            && token != "else"
            && token != "when"
}

/// Returns the index just past the closing quote; a doubled quote is an escaped one.
fn skip_quoted(chars: &[char], start: usize, quote: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        if chars[i] == '\\' && quote == '\'' {
            i += 2;
            continue;
        }
        i += 1;
    }
    chars.len()
}

/// Operation and first table: `SELECT exploits`, `INSERT users`, `UPDATE users`.
fn summarize(normalized: &str) -> String {
    let words: Vec<&str> = normalized
        .split([' ', '(', ')', ','])
        .filter(|w| !w.is_empty())
        .collect();
    let Some(first) = words.first() else {
        return "EMPTY".into();
    };
    let operation = first.to_uppercase();
    let table_after = |keyword: &str| {
        words
            .iter()
            .position(|w| *w == keyword)
            .and_then(|p| words.get(p + 1))
            .filter(|w| {
                is_word(w) && !is_keyword_before_paren(w) && **w != "lateral" && **w != "only"
            })
            .map(|w| w.trim_matches('"').to_string())
    };
    let table = match *first {
        "select" | "delete" | "with" => table_after("from"),
        "insert" => table_after("into"),
        "update" => words.get(1).map(|w| w.trim_matches('"').to_string()),
        _ => None,
    };
    match table {
        Some(table) if table.len() <= 64 => format!("{operation} {table}"),
        _ => operation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_whitespace_and_case_do_not_change_the_fingerprint() {
        let a = Fingerprint::of(
            "SELECT * FROM exploits WHERE chain = 'ethereum' AND amount_usd > 1000000",
        );
        let b = Fingerprint::of("select *\n  from EXPLOITS  where CHAIN='bsc' and amount_usd>5.5");
        assert_eq!(a.id, b.id);
        assert_eq!(
            a.normalized,
            "select * from exploits where chain = ? and amount_usd > ?"
        );
        assert_eq!(a.summary, "SELECT exploits");
    }

    #[test]
    fn in_lists_of_any_length_collapse() {
        let one = Fingerprint::of("SELECT id FROM users WHERE id IN (1)");
        let many = Fingerprint::of("SELECT id FROM users WHERE id IN (1, 2, 3, 4, 5, 6)");
        let params = Fingerprint::of("SELECT id FROM users WHERE id IN ($1, $2)");
        assert_eq!(one.id, many.id);
        assert_eq!(one.id, params.id);
        assert_eq!(one.normalized, "select id from users where id in (...)");
    }

    #[test]
    fn multi_row_values_collapse_to_one_row() {
        let one = Fingerprint::of("INSERT INTO t (a, b) VALUES (1, 'x')");
        let three = Fingerprint::of("INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y'), (3, 'z')");
        assert_eq!(one.id, three.id);
        assert_eq!(one.summary, "INSERT t");
    }

    #[test]
    fn different_statements_differ() {
        let a = Fingerprint::of("SELECT id FROM users WHERE email = $1");
        let b = Fingerprint::of("SELECT id FROM users WHERE tier = $1");
        let c = Fingerprint::of("DELETE FROM users WHERE email = $1");
        assert_ne!(a.id, b.id);
        assert_ne!(a.id, c.id);
        assert_eq!(c.summary, "DELETE users");
    }

    #[test]
    fn comments_quoted_identifiers_and_casts() {
        let a = Fingerprint::of(
            "/* api */ SELECT \"Name\" FROM t -- trailing\n WHERE x = 'it''s'::text",
        );
        assert_eq!(a.normalized, "select \"Name\" from t where x = ? :: text");
        let dollar = Fingerprint::of("SELECT $body$ secret text $body$, $$ more $$");
        assert_eq!(dollar.normalized, "select ?, ?");
        assert!(!dollar.normalized.contains("secret"));
    }

    #[test]
    fn negative_numbers_are_literals_but_subtraction_stays() {
        assert_eq!(normalize("SELECT -5"), "select ?");
        assert_eq!(normalize("SELECT a - 5 FROM t"), "select a - ? from t");
        assert_eq!(normalize("SELECT a-5 FROM t"), "select a - ? from t");
    }

    #[test]
    fn named_and_numbered_parameters_become_placeholders() {
        assert_eq!(
            normalize("UPDATE users SET tier = ?1 WHERE id = :id"),
            "update users set tier = ? where id = ?"
        );
        assert_eq!(
            Fingerprint::of("UPDATE users SET tier = $1").summary,
            "UPDATE users"
        );
    }

    #[test]
    fn fingerprint_is_a_fixed_hash() {
        // A per-process salted hash would make this value change between runs.
        assert_eq!(
            Fingerprint::of("SELECT 1").id,
            format!("{:016x}", fnv1a(b"select ?"))
        );
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    }
}
