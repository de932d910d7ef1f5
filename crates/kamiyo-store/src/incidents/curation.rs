//! Curators' decisions (`curation_decisions`), as the constraints a remerge decides
//! under: claims that must share an incident, and groups of claims that must not.
//!
//! Claims are stored by their ids (`exploit_sources.id`), which survive remerges and a
//! source's corrections (a corrected claim is updated in place, with a new claim key);
//! a remerge names them as it replays them, by source and the claim key its replay
//! computes ([`Decision::named`]), so that an old stored key cannot miss. Decisions apply in
//! the order they were taken, a later one overriding an earlier one on the claims it
//! names: a merge joins every group its claims are in (and lifts the separations between
//! them); a split takes its claims out of their groups into one of their own, and keeps
//! the claims it left together, apart from them.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// A claim by source and claim key.
pub(crate) type ClaimRef = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    Merge,
    Split,
}

impl DecisionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Merge => "merge",
            DecisionKind::Split => "split",
        }
    }
}

/// One decision, its claims named by id as stored (`K = i64`) or as a remerge names them.
#[derive(Debug, Clone)]
pub(crate) struct Decision<K = i64> {
    pub id: i64,
    pub kind: DecisionKind,
    pub claims: Vec<K>,
    /// A split's claims left behind.
    pub others: Vec<K>,
}

impl Decision<i64> {
    /// The decision with its claims named by `name`; a claim it cannot name (no longer
    /// stored) is left out.
    pub fn named<K>(&self, name: impl Fn(i64) -> Option<K>) -> Decision<K> {
        Decision {
            id: self.id,
            kind: self.kind,
            claims: self.claims.iter().filter_map(|&id| name(id)).collect(),
            others: self.others.iter().filter_map(|&id| name(id)).collect(),
        }
    }
}

#[derive(Debug, Clone)]
struct Group<K> {
    members: HashSet<K>,
    /// The decision that formed it.
    decision: i64,
}

/// Every decision, folded into groups and separations.
#[derive(Debug, Clone)]
pub(crate) struct Curation<K = ClaimRef> {
    groups: Vec<Option<Group<K>>>,
    group_of: HashMap<K, usize>,
    /// Pairs of groups (lower index first) whose claims never share an incident.
    apart: HashSet<(usize, usize)>,
}

impl<K: Hash + Eq + Clone> Curation<K> {
    pub fn new(decisions: &[Decision<K>]) -> Curation<K> {
        let mut curation = Curation {
            groups: Vec::new(),
            group_of: HashMap::new(),
            apart: HashSet::new(),
        };
        for decision in decisions {
            match decision.kind {
                DecisionKind::Merge => curation.merge(&decision.claims, decision.id),
                DecisionKind::Split => {
                    let from_split = curation.take_out(&decision.claims);
                    let from_left = curation.take_out(&decision.others);
                    let split = curation.form(&decision.claims, decision.id);
                    let left = curation.form(&decision.others, decision.id);
                    // Claims keep the separations of the groups they came from: a later
                    // split must not undo an earlier one.
                    curation.inherit(split, &from_split);
                    curation.inherit(left, &from_left);
                    if let (Some(a), Some(b)) = (split, left) {
                        curation.apart.insert((a.min(b), a.max(b)));
                    }
                }
            }
        }
        curation
    }

    /// Whether no decision constrains anything.
    pub fn is_empty(&self) -> bool {
        self.group_of.is_empty()
    }

    fn merge(&mut self, claims: &[K], decision: i64) {
        let joined: HashSet<usize> = claims
            .iter()
            .filter_map(|c| self.group_of.get(c).copied())
            .collect();
        let mut members: HashSet<K> = claims.iter().cloned().collect();
        for &g in &joined {
            if let Some(group) = self.groups.get_mut(g).and_then(Option::take) {
                members.extend(group.members);
            }
        }
        let index = self.groups.len();
        let apart: Vec<(usize, usize)> = self.apart.iter().copied().collect();
        for (a, b) in apart {
            let (a_in, b_in) = (joined.contains(&a), joined.contains(&b));
            if a_in || b_in {
                self.apart.remove(&(a, b));
                if !(a_in && b_in) {
                    let other = if a_in { b } else { a };
                    self.apart.insert((other.min(index), other.max(index)));
                }
            }
        }
        for member in &members {
            self.group_of.insert(member.clone(), index);
        }
        self.groups.push(Some(Group { members, decision }));
    }

    /// Takes `claims` out of their groups; the groups they were in.
    fn take_out(&mut self, claims: &[K]) -> HashSet<usize> {
        let mut from = HashSet::new();
        for claim in claims {
            if let Some(g) = self.group_of.remove(claim) {
                from.insert(g);
                if let Some(Some(group)) = self.groups.get_mut(g) {
                    group.members.remove(claim);
                }
            }
        }
        from
    }

    /// Gives group `to` every separation of the groups `from`.
    fn inherit(&mut self, to: Option<usize>, from: &HashSet<usize>) {
        let Some(to) = to else { return };
        let inherited: Vec<usize> = self
            .apart
            .iter()
            .filter_map(|&(a, b)| match (from.contains(&a), from.contains(&b)) {
                (true, false) => Some(b),
                (false, true) => Some(a),
                _ => None,
            })
            .collect();
        for other in inherited {
            if other != to {
                self.apart.insert((other.min(to), other.max(to)));
            }
        }
    }

    fn form(&mut self, claims: &[K], decision: i64) -> Option<usize> {
        if claims.is_empty() {
            return None;
        }
        let index = self.groups.len();
        for claim in claims {
            self.group_of.insert(claim.clone(), index);
        }
        self.groups.push(Some(Group {
            members: claims.iter().cloned().collect(),
            decision,
        }));
        Some(index)
    }

    /// The group a claim is in, when a decision named it.
    pub fn group(&self, claim: &K) -> Option<usize> {
        self.group_of.get(claim).copied()
    }

    /// The claims of group `g`.
    pub fn members(&self, g: usize) -> impl Iterator<Item = &K> {
        self.groups
            .get(g)
            .and_then(Option::as_ref)
            .into_iter()
            .flat_map(|group| group.members.iter())
    }

    /// The decision that formed group `g`.
    pub fn decision(&self, g: usize) -> Option<i64> {
        self.groups
            .get(g)
            .and_then(Option::as_ref)
            .map(|group| group.decision)
    }

    /// The groups whose claims must stay apart from group `g`'s.
    pub fn apart_from(&self, g: usize) -> impl Iterator<Item = usize> + '_ {
        self.apart.iter().filter_map(move |&(a, b)| {
            if a == g {
                Some(b)
            } else if b == g {
                Some(a)
            } else {
                None
            }
        })
    }

    /// Whether claims of groups `a` and `b` must stay in different incidents.
    pub fn are_apart(&self, a: usize, b: usize) -> bool {
        self.apart.contains(&(a.min(b), a.max(b)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(name: &str) -> ClaimRef {
        ("src".to_owned(), name.to_owned())
    }

    fn decision(
        id: i64,
        kind: DecisionKind,
        claims: &[&str],
        others: &[&str],
    ) -> Decision<ClaimRef> {
        Decision {
            id,
            kind,
            claims: claims.iter().map(|n| c(n)).collect(),
            others: others.iter().map(|n| c(n)).collect(),
        }
    }

    #[test]
    fn a_split_keeps_its_claims_apart_from_those_it_left_until_a_later_merge_joins_them() {
        let split = decision(1, DecisionKind::Split, &["a"], &["b", "c"]);
        let curation = Curation::new(std::slice::from_ref(&split));
        let (a, b, c_) = (
            curation.group(&c("a")).unwrap(),
            curation.group(&c("b")).unwrap(),
            curation.group(&c("c")).unwrap(),
        );
        assert_eq!(b, c_, "the claims left stay together");
        assert!(curation.are_apart(a, b));
        assert_eq!(curation.apart_from(a).collect::<Vec<_>>(), vec![b]);
        assert_eq!(curation.decision(a), Some(1));

        let merged = Curation::new(&[split, decision(2, DecisionKind::Merge, &["a", "b"], &[])]);
        let (a, c_) = (
            merged.group(&c("a")).unwrap(),
            merged.group(&c("c")).unwrap(),
        );
        assert_eq!(a, c_, "the merge joins every group its claims are in");
        assert!(!merged.are_apart(a, c_));
        assert_eq!(merged.members(a).count(), 3);
        assert_eq!(merged.decision(a), Some(2));
    }

    #[test]
    fn a_decision_is_named_as_the_caller_knows_its_claims_and_drops_claims_gone() {
        let stored = Decision {
            id: 7,
            kind: DecisionKind::Split,
            claims: vec![1, 2],
            others: vec![3],
        };
        let named = stored.named(|id| (id != 2).then(|| c(&format!("k{id}"))));
        assert_eq!(named.claims, vec![c("k1")]);
        assert_eq!(named.others, vec![c("k3")]);
        let curation = Curation::new(&[named]);
        let (one, three) = (
            curation.group(&c("k1")).unwrap(),
            curation.group(&c("k3")).unwrap(),
        );
        assert!(curation.are_apart(one, three));
    }

    #[test]
    fn a_second_split_keeps_the_first_one() {
        let curation = Curation::new(&[
            decision(1, DecisionKind::Split, &["a"], &["b", "c"]),
            decision(2, DecisionKind::Split, &["c"], &["b"]),
        ]);
        let (a, b, c_) = (
            curation.group(&c("a")).unwrap(),
            curation.group(&c("b")).unwrap(),
            curation.group(&c("c")).unwrap(),
        );
        assert!(curation.are_apart(b, c_));
        assert!(
            curation.are_apart(a, b),
            "the first split still holds for b"
        );
        assert!(curation.are_apart(a, c_), "and for c");
    }

    #[test]
    fn a_merge_of_one_side_keeps_the_separation_from_the_other() {
        let curation = Curation::new(&[
            decision(1, DecisionKind::Split, &["a"], &["b"]),
            decision(2, DecisionKind::Merge, &["a", "x"], &[]),
        ]);
        let (a, x, b) = (
            curation.group(&c("a")).unwrap(),
            curation.group(&c("x")).unwrap(),
            curation.group(&c("b")).unwrap(),
        );
        assert_eq!(a, x);
        assert!(curation.are_apart(x, b), "x joined a's side");
        assert!(curation.group(&c("unnamed")).is_none());
    }
}
