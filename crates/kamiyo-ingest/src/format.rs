use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// The input formats this crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Kamiyo's JSON Lines format: one JSON object per line.
    Jsonl,
    /// Kamiyo's CSV format: a header row, then one incident per record.
    Csv,
    /// The DeFiLlama `/hacks` export saved as CSV.
    Defillama,
    /// DeFiLlama's JSON hacks endpoint (`https://api.llama.fi/hacks`).
    DefillamaApi,
    /// The DeFiHackLabs README: one markdown section per incident.
    Defihacklabs,
    /// rekt.news's RSS 2.0 feed.
    RektRss,
}

/// Every format, in the order messages list them.
pub const FORMATS: &[Format] = &[
    Format::Jsonl,
    Format::Csv,
    Format::Defillama,
    Format::DefillamaApi,
    Format::Defihacklabs,
    Format::RektRss,
];

impl Format {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Defillama => "defillama",
            Format::DefillamaApi => "defillama-api",
            Format::Defihacklabs => "defihacklabs",
            Format::RektRss => "rekt-rss",
        }
    }

    /// Guesses the format from the file extension: `.jsonl` and `.ndjson` are
    /// [`Format::Jsonl`], `.csv` is [`Format::Csv`] (case-insensitive). A DeFiLlama export
    /// is also a `.csv` file, so [`Format::Defillama`] is never guessed: ask for it by name.
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`FORMATS`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown import format {0:?}: expected one of {names}", names = format_names(", "))]
pub struct UnknownFormatError(pub String);

/// Every format's name, joined by `separator`.
pub fn format_names(separator: &str) -> String {
    FORMATS
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(separator)
}

impl FromStr for Format {
    type Err = UnknownFormatError;

    /// Accepts the name of any of [`FORMATS`], in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        FORMATS
            .iter()
            .copied()
            .find(|format| format.name() == wanted)
            .ok_or_else(|| UnknownFormatError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_display() {
        for &format in FORMATS {
            assert_eq!(format.to_string().parse::<Format>().unwrap(), format);
        }
        assert_eq!("DeFiLlama".parse::<Format>().unwrap(), Format::Defillama);
    }

    #[test]
    fn unknown_name_lists_the_valid_ones() {
        let err = "xml".parse::<Format>().unwrap_err();
        assert!(
            err.to_string()
                .contains("jsonl, csv, defillama, defillama-api, defihacklabs, rekt-rss"),
            "{err}"
        );
    }

    #[test]
    fn from_path_uses_the_extension_and_never_guesses_defillama() {
        assert_eq!(
            Format::from_path(Path::new("a/b.jsonl")),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::from_path(Path::new("b.NDJSON")),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::from_path(Path::new("defillama_hacks.csv")),
            Some(Format::Csv)
        );
        assert_eq!(Format::from_path(Path::new("b.json")), None);
        assert_eq!(Format::from_path(Path::new("jsonl")), None);
    }
}
