//! Synthetic incidents that look like real data: a few hundred protocols hacked with a
//! Zipf-like skew, chains with the real skew (Ethereum and BNB Chain dominate), dates
//! concentrated in 2020–2025, log-normal losses from $1k to $600M with some unknown,
//! attack types from the taxonomy, statuses mostly confirmed, about half with an EVM
//! transaction hash. Everything comes from one seeded RNG: the same seed and count give
//! the same rows.

use chrono::{DateTime, Datelike, TimeZone, Utc};
use kamiyo_domain::attack::ATTACK_TYPES;
use kamiyo_domain::protocol::protocol_key;
use kamiyo_domain::{AttackType, Chain, ChainFamily};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Primary chain of an incident, with weights (per mille). A second chain is drawn from
/// the same table for multi-chain (mostly bridge) incidents.
const CHAINS: &[(&str, u32)] = &[
    ("ethereum", 450),
    ("bsc", 250),
    ("arbitrum", 60),
    ("polygon", 50),
    ("solana", 40),
    ("base", 35),
    ("avalanche", 30),
    ("optimism", 20),
    ("fantom", 20),
    ("blast", 10),
    ("linea", 8),
    ("gnosis", 8),
    ("cronos", 7),
    ("harmony", 7),
    ("moonbeam", 5),
];

/// Share of incidents per year (percent): few before DeFi summer, most in 2021–2024.
const YEARS: &[(i32, u32)] = &[
    (2016, 1),
    (2017, 2),
    (2018, 3),
    (2019, 4),
    (2020, 9),
    (2021, 16),
    (2022, 18),
    (2023, 17),
    (2024, 16),
    (2025, 14),
];

const STATUSES: &[(&str, u32)] = &[
    ("confirmed", 900),
    ("suspected", 60),
    ("disputed", 30),
    ("not_a_loss", 10),
];

const SOURCES: &[(&str, u32)] = &[
    ("defillama", 40),
    ("slowmist", 20),
    ("rekt", 15),
    ("peckshield", 15),
    ("immunefi", 10),
];

/// Relative frequency of each attack type (by `as_str`).
const ATTACK_WEIGHTS: &[(&str, u32)] = &[
    ("access_control", 14),
    ("logic_error", 12),
    ("private_key_compromise", 12),
    ("rug_pull", 12),
    ("oracle_manipulation", 10),
    ("reentrancy", 7),
    ("phishing", 6),
    ("input_validation", 5),
    ("unknown", 5),
    ("math_precision", 4),
    ("signature_verification", 3),
    ("mev_frontrun", 3),
    ("infrastructure", 3),
    ("governance_attack", 2),
    ("frontend_supply_chain", 2),
];

/// Incidents named after real hacks, then synthetic `Prefix Suffix` names up to the
/// requested number of distinct protocol keys.
const REAL_PROTOCOLS: &[&str] = &[
    "Ronin Bridge",
    "Poly Network",
    "Wormhole",
    "Nomad Bridge",
    "Euler Finance",
    "Beanstalk",
    "Wintermute",
    "Cream Finance",
    "BadgerDAO",
    "Mango Markets",
    "Harmony Horizon Bridge",
    "Qubit Finance",
    "Compound",
    "Curve Finance",
    "Multichain",
    "Atomic Wallet",
    "Mixin Network",
    "KyberSwap",
    "Orbit Chain",
    "HECO Bridge",
    "Radiant Capital",
    "Platypus Finance",
    "Hundred Finance",
    "Rari Capital",
    "Fei Protocol",
    "Inverse Finance",
    "Yearn Finance",
    "Harvest Finance",
    "Alpha Homora",
    "PancakeBunny",
    "Uranium Finance",
    "bZx",
    "dForce",
    "Value DeFi",
    "Cashio",
    "Saddle Finance",
    "Transit Swap",
    "Ankr",
    "Level Finance",
    "Jimbos Protocol",
    "Sonne Finance",
    "Exactly Protocol",
    "Conic Finance",
    "Balancer",
    "Onyx Protocol",
    "Prisma Finance",
    "Munchables",
    "Hedgey Finance",
    "Velocore",
    "UwU Lend",
    "LI.FI",
    "WazirX",
    "Penpie",
    "BingX",
    "Abracadabra",
    "Cetus",
    "zkLend",
    "Grim Finance",
    "Nirvana Finance",
    "Deus Finance",
];

const PREFIXES: &[&str] = &[
    "Aqua", "Blaze", "Cobalt", "Delta", "Ember", "Flux", "Gala", "Helix", "Ion", "Jade", "Kite",
    "Lumen", "Mira", "Nova", "Orca", "Pulse", "Quark", "Ripple", "Sola", "Terra", "Umbra", "Vega",
    "Warp", "Zephyr", "Astra", "Borealis", "Cygnus", "Dune",
];

const SUFFIXES: &[&str] = &[
    "Swap", "Lend", "Vault", "Bridge", "Yield", "Markets", "Perps", "Stake", "DEX", "Money",
];

/// One synthetic incident, with everything the four tables need.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub protocol: String,
    pub protocol_key: String,
    /// Primary chain first; one or two chains.
    pub chains: Vec<&'static str>,
    pub occurred_at: DateTime<Utc>,
    /// The date as the source wrote it.
    pub reported_date: String,
    /// Canonical `NUMERIC(20,2)` text; `None` when unknown.
    pub loss_usd: Option<String>,
    pub recovered_usd: Option<String>,
    pub attack_type: AttackType,
    pub technique: String,
    pub status: &'static str,
    /// On the primary chain, which is EVM when there is one.
    pub tx_hash: Option<String>,
    pub flash_loan: bool,
    pub bridge: bool,
    pub description: Option<String>,
    pub source: &'static str,
    pub source_url: String,
}

impl Incident {
    pub fn external_id(&self) -> String {
        format!("bench-{}", self.id)
    }

    /// The claim key the importer would compute for a record with an external id.
    pub fn claim_key(&self) -> String {
        format!("id:{}@{}", self.external_id(), self.reported_date)
    }

    /// As `kamiyo_store::incidents::dedup_key`: `src:<source>:<claim key>`.
    pub fn dedup_key(&self) -> String {
        format!("src:{}:{}", self.source, self.claim_key())
    }

    pub fn chains_json(&self) -> String {
        serde_json::Value::from(self.chains.clone()).to_string()
    }

    pub fn tx_hashes_json(&self) -> String {
        let hashes: Vec<String> = self
            .tx_hash
            .iter()
            .map(|h| format!("{}:{h}", self.chains[0]))
            .collect();
        serde_json::Value::from(hashes).to_string()
    }
}

pub struct Synth {
    rng: StdRng,
    /// Display name and key, in popularity order.
    protocols: Vec<(String, String)>,
    /// Cumulative Zipf weights over `protocols`.
    protocol_cdf: Vec<f64>,
    attack_types: Vec<(AttackType, u32)>,
}

impl Synth {
    /// Fails only when a chain slug or attack type in the tables above is not canonical.
    pub fn new(seed: u64, protocol_count: usize) -> anyhow::Result<Synth> {
        for (slug, _) in CHAINS {
            let chain = Chain::parse(slug)?;
            anyhow::ensure!(
                chain.slug() == *slug && chain.is_known(),
                "{slug} is not a known chain slug"
            );
        }
        let attack_types = ATTACK_WEIGHTS
            .iter()
            .map(|(name, weight)| {
                ATTACK_TYPES
                    .iter()
                    .find(|t| t.as_str() == *name)
                    .map(|t| (*t, *weight))
                    .ok_or_else(|| anyhow::anyhow!("{name} is not in the taxonomy"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;

        let mut rng = StdRng::seed_from_u64(seed);
        let protocols = protocol_names(&mut rng, protocol_count);
        // Zipf-like popularity (s = 0.8): a few protocols are hit again and again, most
        // rarely. The order is shuffled so the famous names are not always the top.
        let mut cdf = Vec::with_capacity(protocols.len());
        let mut sum = 0.0;
        for rank in 1..=protocols.len() {
            sum += 1.0 / (rank as f64).powf(0.8);
            cdf.push(sum);
        }
        Ok(Synth {
            rng,
            protocols,
            protocol_cdf: cdf,
            attack_types,
        })
    }

    pub fn protocol_count(&self) -> usize {
        self.protocols.len()
    }

    pub fn next(&mut self, id: i64) -> Incident {
        let total = self.protocol_cdf.last().copied().unwrap_or(1.0);
        let x = self.rng.random::<f64>() * total;
        let index = self
            .protocol_cdf
            .partition_point(|c| *c < x)
            .min(self.protocols.len().saturating_sub(1));
        let (protocol, key) = self.protocols[index].clone();

        let primary = *pick(&mut self.rng, CHAINS);
        let mut chains = vec![primary];
        if self.rng.random_bool(0.07) {
            let second = *pick(&mut self.rng, CHAINS);
            if second != primary {
                chains.push(second);
            }
        }
        let bridge = chains.len() > 1 && self.rng.random_bool(0.8);

        let year = *pick(&mut self.rng, YEARS);
        let start = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).single();
        let end = Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0).single();
        let occurred_at = match (start, end) {
            (Some(start), Some(end)) => {
                let span = (end - start).num_seconds();
                start + chrono::Duration::seconds(self.rng.random_range(0..span))
            }
            _ => DateTime::<Utc>::UNIX_EPOCH,
        };
        let reported_date = format!(
            "{:04}-{:02}-{:02}",
            occurred_at.year(),
            occurred_at.month(),
            occurred_at.day()
        );

        // Log-normal around a $400k median (sigma 2.3), truncated to $1k..$600M; 8 %
        // unknown. Most sources report whole dollars.
        let loss_cents = if self.rng.random_bool(0.08) {
            None
        } else {
            let dollars = loop {
                let v = (400_000f64.ln() + 2.3 * self.normal()).exp();
                if (1_000.0..=600_000_000.0).contains(&v) {
                    break v;
                }
            };
            let cents = if self.rng.random_bool(0.9) {
                dollars.round() as u64 * 100
            } else {
                (dollars * 100.0).round() as u64
            };
            Some(cents)
        };
        let recovered_cents = match loss_cents {
            Some(loss) if self.rng.random_bool(0.12) => {
                let share = self.rng.random_range(0.05..=1.0);
                Some(((loss as f64) * share).round() as u64)
            }
            _ => None,
        };

        let attack_type = *pick(&mut self.rng, &self.attack_types);
        let flash_share = match attack_type {
            AttackType::OracleManipulation => 0.6,
            AttackType::LogicError | AttackType::MathPrecision | AttackType::GovernanceAttack => {
                0.3
            }
            _ => 0.02,
        };
        let flash_loan = self.rng.random_bool(flash_share);
        let mut technique = attack_type.as_str().replace('_', " ");
        if flash_loan {
            technique = format!("flash loan {technique}");
        }

        let status = *pick(&mut self.rng, STATUSES);
        let evm = Chain::parse(primary)
            .map(|c| c.family() == ChainFamily::Evm)
            .unwrap_or(false);
        // 52 % of EVM incidents (about 96 % of all) have a hash: about half overall. The
        // id is in the last 16 hex digits, so hashes never collide.
        let tx_hash = (evm && self.rng.random_bool(0.52)).then(|| {
            format!(
                "0x{:016x}{:016x}{:016x}{:016x}",
                self.rng.random::<u64>(),
                self.rng.random::<u64>(),
                self.rng.random::<u64>(),
                id as u64
            )
        });

        let source = *pick(&mut self.rng, SOURCES);
        let description = self.rng.random_bool(0.7).then(|| {
            format!(
                "{protocol} on {} lost funds to {technique}. The attacker {} and moved the proceeds \
                 through {}. Synthetic benchmark record {id}; amounts and hashes are generated.",
                chains.join(" and "),
                ATTACKER_ACTIONS[self.rng.random_range(0..ATTACKER_ACTIONS.len())],
                LAUNDERING[self.rng.random_range(0..LAUNDERING.len())],
            )
        });
        Incident {
            id,
            protocol,
            protocol_key: key,
            chains,
            occurred_at,
            reported_date,
            loss_usd: loss_cents.map(money),
            recovered_usd: recovered_cents.map(money),
            attack_type,
            technique,
            status,
            tx_hash,
            flash_loan,
            bridge,
            description,
            source,
            source_url: format!("https://{source}.example/incidents/{id}"),
        }
    }

    /// A standard normal draw (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1: f64 = 1.0 - self.rng.random::<f64>();
        let u2: f64 = self.rng.random::<f64>();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

const ATTACKER_ACTIONS: &[&str] = &[
    "drained the lending pools in a single transaction",
    "minted unbacked tokens and sold them into the pools",
    "used a compromised deployer key to upgrade the contracts",
    "repeated the exploit across several blocks before the team paused the protocol",
    "borrowed against manipulated collateral",
];

const LAUNDERING: &[&str] = &[
    "Tornado Cash",
    "a cross-chain bridge",
    "several centralised exchanges",
    "a chain of fresh wallets",
    "a mixer and then Bitcoin",
];

fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [(T, u32)]) -> &'a T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (item, weight) in items {
        if x < *weight {
            return item;
        }
        x -= weight;
    }
    &items[items.len() - 1].0
}

/// `count` names with distinct protocol keys: the real ones first, then synthetic
/// combinations (some with a noise word such as "Finance", which the key drops),
/// shuffled into popularity order.
fn protocol_names(rng: &mut StdRng, count: usize) -> Vec<(String, String)> {
    let mut seen = std::collections::HashSet::new();
    let mut names = Vec::new();
    let synthetic = SUFFIXES.iter().flat_map(|suffix| {
        PREFIXES
            .iter()
            .map(move |prefix| format!("{prefix} {suffix}"))
    });
    for name in REAL_PROTOCOLS
        .iter()
        .map(|n| (*n).to_owned())
        .chain(synthetic)
    {
        if names.len() >= count {
            break;
        }
        let key = protocol_key(&name);
        if seen.insert(key.clone()) {
            names.push((name, key));
        }
    }
    for (name, _) in names.iter_mut().skip(REAL_PROTOCOLS.len()) {
        if rng.random_bool(0.2) {
            name.push_str(" Finance");
        }
    }
    // Fisher–Yates with our RNG: deterministic for a seed.
    for i in (1..names.len()).rev() {
        let j = rng.random_range(0..=i);
        names.swap(i, j);
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_incidents() {
        let mut a = Synth::new(7, 300).unwrap();
        let mut b = Synth::new(7, 300).unwrap();
        for id in 1..200 {
            assert_eq!(a.next(id), b.next(id));
        }
    }

    #[test]
    fn three_hundred_distinct_protocol_keys() {
        let synth = Synth::new(1, 300).unwrap();
        assert_eq!(synth.protocol_count(), 300);
        let keys: std::collections::HashSet<_> =
            synth.protocols.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(keys.len(), 300);
    }

    #[test]
    fn distributions_look_like_the_brief() {
        let mut synth = Synth::new(42, 300).unwrap();
        let n = 20_000;
        let incidents: Vec<Incident> = (1..=n).map(|id| synth.next(id)).collect();
        let share = |f: &dyn Fn(&Incident) -> bool| {
            incidents.iter().filter(|i| f(i)).count() as f64 / n as f64
        };
        let eth = share(&|i| i.chains[0] == "ethereum");
        let bsc = share(&|i| i.chains[0] == "bsc");
        let unknown = share(&|i| i.loss_usd.is_none());
        let hashed = share(&|i| i.tx_hash.is_some());
        let confirmed = share(&|i| i.status == "confirmed");
        assert!((0.42..0.48).contains(&eth), "{eth}");
        assert!((0.22..0.28).contains(&bsc), "{bsc}");
        assert!((0.06..0.10).contains(&unknown), "{unknown}");
        assert!((0.45..0.55).contains(&hashed), "{hashed}");
        assert!(confirmed > 0.85, "{confirmed}");
        for i in &incidents {
            if let Some(loss) = &i.loss_usd {
                let v: f64 = loss.parse().unwrap();
                assert!((1_000.0..=600_000_000.0).contains(&v), "{loss}");
                kamiyo_domain::Usd::parse("loss", loss).unwrap();
            }
            if let Some(hash) = &i.tx_hash {
                let chain = Chain::parse(i.chains[0]).unwrap();
                assert_eq!(
                    &kamiyo_domain::TxHash::parse(chain, hash).unwrap().hash,
                    hash
                );
            }
            assert!((2016..=2025).contains(&i.occurred_at.year()));
            assert!(i.chains.len() == 1 || i.chains[0] != i.chains[1]);
        }
    }
}
