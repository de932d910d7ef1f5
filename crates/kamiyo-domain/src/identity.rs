//! Whether two reported protocol names are one protocol (docs/DEDUP.md, "Identity").
//!
//! A protocol key (`protocol::protocol_key`) already folds case, spaces, punctuation,
//! a trailing version and separate suffix words. Real sources still differ past it:
//! `TempleDAO` keys to `temple` but `Templedao` to `templedao`, `UnizenIO` to `unizenio`,
//! `WOOFi Swap` to `woofiswap`, and some protocols go by two names (`Abracadabra` and
//! `MIMSpell`). So names are compared by their **core**: the key with suffix words
//! stripped from its end even when glued on (`templedao` → `temple`), as long as four
//! characters remain; then through the alias table
//! (`crates/kamiyo-domain/data/protocol_aliases.txt`).
//!
//! Two names are the same protocol ([`NameMatch::Same`]) when their cores are equal or
//! in one alias group. An incident is stored under the core of its first claim's key
//! (`exploits.protocol_key`), so a claim finds the incidents its name can match by a few
//! exact index lookups ([`Aliases::lookups`]), never by comparing its name with every
//! stored one; writers serialise, and importers split their streams, on the alias
//! group's own core ([`Aliases::lock_key`]).

use std::collections::HashMap;

/// The shortest core a suffix word may be stripped down to: `uniswap` stays itself.
pub const MIN_CORE_CHARS: usize = 4;

/// Words sources add to a protocol's name, stripped from the end of a key even when
/// glued on. Longer words first, so that `defi` is tried before `fi`.
const SUFFIX_WORDS: &[&str] = &[
    "multisig", "platform", "protocol", "exchange", "finance", "capital", "lending", "network",
    "vesting", "markets", "bridge", "market", "vaults", "wallet", "money", "chain", "farms",
    "token", "vault", "labs", "farm", "swap", "defi", "dao", "dex", "amm", "lab", "app", "io",
    "fi",
];

/// How two names relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NameMatch {
    None,
    Same,
}

/// The protocol alias table: groups of cores that are one protocol.
#[derive(Debug, Clone, Default)]
pub struct Aliases {
    /// Core → the group's own core (its first name's).
    canonical: HashMap<String, String>,
    /// The group's own core → every core of the group.
    members: HashMap<String, Vec<String>>,
}

/// One line of the alias table that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("protocol aliases, line {line}: {message}")]
pub struct AliasError {
    pub line: usize,
    pub message: String,
}

const SHIPPED: &str = include_str!("../data/protocol_aliases.txt");

impl Aliases {
    /// The table shipped with the service.
    ///
    /// # Errors
    ///
    /// The first line of the shipped file that cannot be read (a test reads it, so a
    /// release never carries one).
    pub fn shipped() -> Result<Aliases, AliasError> {
        Aliases::parse(SHIPPED)
    }

    /// Reads `Name, Name, ... | reason` lines; `#` starts a comment line.
    ///
    /// # Errors
    ///
    /// A line without a reason, one whose names all key alike, or a name in two groups.
    pub fn parse(text: &str) -> Result<Aliases, AliasError> {
        let mut aliases = Aliases::default();
        for (index, line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let error = |message: String| AliasError {
                line: line_no,
                message,
            };
            let (names, reason) = line
                .split_once('|')
                .ok_or_else(|| error("expected `Name, Name | reason`".into()))?;
            if reason.trim().is_empty() {
                return Err(error(
                    "every group says why its names are one protocol".into(),
                ));
            }
            let mut group: Vec<String> = Vec::new();
            for name in names.split(',') {
                let core = core(&crate::protocol::protocol_key(name));
                if !core.is_empty() && !group.contains(&core) {
                    group.push(core);
                }
            }
            let Some(own) = group.first().cloned() else {
                return Err(error("no name".into()));
            };
            if group.len() < 2 {
                return Err(error(format!(
                    "the names all key to `{own}` already; the line is not needed"
                )));
            }
            for member in &group {
                if aliases.canonical.contains_key(member) {
                    return Err(error(format!("`{member}` is in two groups")));
                }
                aliases.canonical.insert(member.clone(), own.clone());
            }
            aliases.members.insert(own, group);
        }
        Ok(aliases)
    }

    /// Adds `alias` to the group of `name` (a new group when `name` is in none), as an
    /// operator does at run time.
    ///
    /// # Errors
    ///
    /// Why it cannot: a name that keys to nothing, two names that key alike already, or
    /// an alias that is already one (of this protocol or another).
    pub fn add(&mut self, name: &str, alias: &str) -> Result<(), String> {
        let (own, other) = (alias_key(name), alias_key(alias));
        if own.is_empty() || other.is_empty() {
            return Err("a name must have letters or digits".into());
        }
        if own == other {
            return Err(format!(
                "`{alias}` and `{name}` key alike (`{own}`) already"
            ));
        }
        let group = self.group_of(&own).to_owned();
        match self.canonical.get(&other) {
            Some(existing) if *existing == group => {
                return Err(format!("`{alias}` is an alias of `{name}` already"))
            }
            Some(existing) => {
                return Err(format!(
                    "`{alias}` is an alias of another protocol (`{existing}`) already"
                ))
            }
            None => {}
        }
        if !self.canonical.contains_key(&own) {
            self.canonical.insert(own.clone(), own.clone());
            self.members.insert(own.clone(), vec![own]);
        }
        self.canonical.insert(other.clone(), group.clone());
        self.members.entry(group).or_default().push(other);
        Ok(())
    }

    /// How many groups the table has.
    pub fn groups(&self) -> usize {
        self.members.len()
    }

    /// How the names under protocol keys `a` and `b` relate.
    pub fn name_match(&self, a: &str, b: &str) -> NameMatch {
        let (a, b) = (core(a), core(b));
        if a == b || self.group_of(&a) == self.group_of(&b) {
            NameMatch::Same
        } else {
            NameMatch::None
        }
    }

    /// The stored protocol keys under which an incident that protocol key `key` can
    /// match is found: its core and its alias group's cores (incidents are stored under
    /// their first name's core), and the key itself (incidents stored before cores
    /// were, under their first name's key).
    pub fn lookups(&self, key: &str) -> Vec<String> {
        let own = core(key);
        let mut keys = vec![key.to_owned()];
        match self
            .canonical
            .get(&own)
            .and_then(|group| self.members.get(group))
        {
            Some(members) => keys.extend(members.iter().cloned()),
            None => keys.push(own),
        }
        keys.sort();
        keys.dedup();
        keys
    }

    /// What claims of protocol key `key` serialise on: the alias group's own core (the
    /// core itself outside any group). Two names that can match share it.
    pub fn lock_key(&self, key: &str) -> String {
        let own = core(key);
        self.group_of(&own).to_owned()
    }

    /// The group's own core, or the core itself outside any group.
    fn group_of<'a>(&'a self, core: &'a str) -> &'a str {
        self.canonical.get(core).map_or(core, String::as_str)
    }
}

/// How alike two protocol keys' cores are, from 0 to 1 (Jaro-Winkler: a shared beginning
/// counts most, as in `Platypus`/`Platypusfi`). Evidence for a person to weigh
/// (`kamiyo incidents candidates`), never a merge by itself: `Bulkfi 1`/`Bulkfi 12` and
/// `Curve`/`Curvance` are alike and different protocols.
pub fn similarity(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(&core(a), &core(b))
}

/// The key an alias is known by: its name's protocol key's core (what the table holds).
pub fn alias_key(name: &str) -> String {
    core(&crate::protocol::protocol_key(name))
}

/// `key` without the suffix words at its end, glued on or not, while at least
/// [`MIN_CORE_CHARS`] characters remain.
pub fn core(key: &str) -> String {
    let mut core = key;
    'strip: loop {
        for word in SUFFIX_WORDS {
            if let Some(rest) = core.strip_suffix(word) {
                if rest.chars().count() >= MIN_CORE_CHARS {
                    core = rest;
                    continue 'strip;
                }
            }
        }
        // A version glued on (`v2`); `fusionv1settlement` keeps its inner one.
        if let Some(at) = core.rfind('v') {
            let (rest, version) = core.split_at(at);
            if version.len() > 1
                && version[1..].chars().all(|c| c.is_ascii_digit())
                && rest.chars().count() >= MIN_CORE_CHARS
            {
                core = rest;
                continue 'strip;
            }
        }
        break;
    }
    core.to_owned()
}

/// How far apart two claims citing one page may be dated and still be one incident: a
/// news article dates itself days after the hack when its page was not read.
pub const SHARED_URL_WINDOW_DAYS: i64 = 7;

/// A source page as evidence of identity: two claims that cite the same post-mortem,
/// article or tweet report one hack. The scheme, `www.`, the case of the host, a
/// fragment, the query (tracking parameters: `?s=20&t=...`) and a trailing slash do not
/// matter. `None` for a URL that names no page (a site's home, a profile without a
/// post): those are cited for many hacks and prove nothing.
pub fn url_key(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host).to_owned();
    let path = parsed.path().trim_end_matches('/');
    // One segment is a site's section or a profile (`/peckshield`), except on sites whose
    // pages are one segment deep (`rekt.news/euler-rekt`): those need a word with a dash.
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let names_a_page = match segments.as_slice() {
        [] => false,
        [one] => one.contains('-') && one.len() >= 8,
        _ => true,
    };
    names_a_page.then(|| format!("{host}{path}"))
}

/// The forms a stored URL of the same page may have been written in, for an exact
/// lookup: as given, without its query and fragment, each with and without a trailing
/// slash, on http and https.
pub fn url_variants(url: &str) -> Vec<String> {
    let url = url.trim();
    let bare = url.split(['?', '#']).next().unwrap_or(url);
    let mut variants = Vec::new();
    for form in [url, bare] {
        let trimmed = form.trim_end_matches('/');
        for base in [trimmed.to_owned(), format!("{trimmed}/")] {
            for scheme_swapped in [
                base.clone(),
                base.replacen("https://", "http://", 1),
                base.replacen("http://", "https://", 1),
            ] {
                variants.push(scheme_swapped);
            }
        }
    }
    variants.sort();
    variants.dedup();
    variants
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::protocol_key;

    #[test]
    fn an_operator_alias_joins_a_group_and_is_refused_where_it_would_mean_two_protocols() {
        let mut aliases = Aliases::parse("Multichain, Anyswap | renamed").unwrap();
        let (ronin, axie) = (protocol_key("Ronin Network"), protocol_key("Axie Infinity"));
        assert_eq!(aliases.name_match(&ronin, &axie), NameMatch::None);
        aliases.add("Axie Infinity", "Ronin Network").unwrap();
        assert_eq!(aliases.name_match(&ronin, &axie), NameMatch::Same);
        assert_eq!(aliases.lock_key(&ronin), aliases.lock_key(&axie));
        // Into a shipped group: the group's own name stays its lock key.
        aliases.add("Anyswap", "Fusion DEX").unwrap();
        assert_eq!(aliases.lock_key(&protocol_key("Fusion DEX")), "multi");
        for (name, alias) in [
            ("Axie Infinity", "Ronin"),
            ("Nomad", "Nomad Bridge"),
            ("Euler", "Anyswap"),
            ("Euler", "---"),
        ] {
            assert!(aliases.add(name, alias).is_err(), "{name} / {alias}");
        }
    }

    fn relate(a: &str, b: &str) -> NameMatch {
        Aliases::shipped()
            .unwrap()
            .name_match(&protocol_key(a), &protocol_key(b))
    }

    #[test]
    fn the_shipped_table_reads() {
        let aliases = Aliases::shipped().unwrap();
        assert!(aliases.members.len() >= 5);
    }

    #[test]
    fn names_that_real_sources_give_one_protocol_meet() {
        let aliases = Aliases::shipped().unwrap();
        for (a, b) in [
            ("Ronin Bridge", "Ronin Network"),
            ("Nomad", "Nomad Bridge"),
            ("WOOFi Swap", "Woofi"),
            ("UnizenIO", "Unizen"),
            ("TempleDAO", "Templedao"),
            ("Abracadabra", "MIMSpell"),
            ("Mango Markets", "Mango"),
            ("Gate.io", "Gate"),
            ("Uniswap V3", "uniswap"),
            ("Beefy.fi", "Beefy"),
        ] {
            assert_eq!(relate(a, b), NameMatch::Same, "{a} / {b}");
            // Each finds an incident stored under the other's core, and both lock alike.
            let (ka, kb) = (protocol_key(a), protocol_key(b));
            assert!(aliases.lookups(&ka).contains(&core(&kb)), "{a} / {b}");
            assert!(aliases.lookups(&kb).contains(&core(&ka)), "{b} / {a}");
            assert_eq!(aliases.lock_key(&ka), aliases.lock_key(&kb), "{a} / {b}");
        }
    }

    #[test]
    fn different_protocols_do_not_meet() {
        for (a, b) in [
            ("Uni", "Unizen"),
            ("Euler", "Eulith"),
            ("Curve", "Curvance"),
            ("Sushi", "Susu"),
            ("Uniswap", "Unicly"),
            ("1inch FusionV1 Settlement", "1inch"),
            ("Bulkfi 1", "Bulkfi 12"),
        ] {
            assert_eq!(relate(a, b), NameMatch::None, "{a} / {b}");
        }
        // A short name is never stripped into another.
        assert_eq!(core("unifi"), "unifi");
        assert_eq!(core("woofi"), "woofi");
        assert_eq!(core("uniswap"), "uniswap");
    }

    #[test]
    fn a_page_is_one_page_however_written_and_a_site_is_no_page() {
        let key = url_key("https://rekt.news/au-dodo-rekt/").unwrap();
        for same in [
            "http://www.rekt.news/au-dodo-rekt",
            "https://REKT.news/au-dodo-rekt/#top",
            "https://rekt.news/au-dodo-rekt/?utm_source=x",
        ] {
            assert_eq!(url_key(same).as_deref(), Some(key.as_str()), "{same}");
            assert!(url_variants(same)
                .iter()
                .any(|v| url_key(v).as_deref() == Some(key.as_str())));
        }
        assert!(url_variants("https://rekt.news/au-dodo-rekt/?s=1")
            .contains(&"https://rekt.news/au-dodo-rekt".to_owned()));
        for site in [
            "https://rekt.news/",
            "https://twitter.com/peckshield",
            "https://defillama.com",
            "not a url",
        ] {
            assert_eq!(url_key(site), None, "{site}");
        }
        assert!(url_key("https://twitter.com/FatManTerra/status/1531365988809293825").is_some());
    }

    #[test]
    fn a_bad_table_line_is_named() {
        for (text, says) in [
            ("Alpha, Beta", "expected"),
            ("Alpha, Beta |  ", "why"),
            ("Alpha Finance, Alpha | same", "not needed"),
            ("Alpha, Beta | x\nBeta, Gamma | y", "two groups"),
        ] {
            let err = Aliases::parse(text).unwrap_err();
            assert!(err.to_string().contains(says), "{text}: {err}");
        }
    }
}
