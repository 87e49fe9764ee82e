//! What a prefetch reads of each record (rows, aliases, pending entries): one read per record,
//! or one capped range for many, and how an answer is folded into what the transaction knows.

use serde_json::Value;

use super::{decode_entry, Known};
use crate::core::error::Result;
use crate::core::record::Row;
use crate::core::storage::{Key, Read, Table, OUTBOX_BY_RECORD};

/// What a prefetch reads of each record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Rows,
    Aliases,
    Entries,
}

impl Part {
    /// The read of this part for one record.
    pub(super) fn get<'c>(self, c: &'c str, id: &str) -> Read<'c> {
        match self {
            Part::Rows => Read::Get(Table::Records(c), Key::str(id)),
            Part::Aliases => Read::Get(Table::Aliases, Key::Pair(c.into(), id.into())),
            Part::Entries => Read::Index(
                Table::Outbox,
                OUTBOX_BY_RECORD,
                Value::Array(vec![c.into(), id.into()]),
            ),
        }
    }

    /// The first read of this part for one record. For entries it only asks whether the record
    /// has any (most have none, and that `getKey` is cheap); [`Part::get`] follows for those that
    /// do.
    pub(super) fn probe<'c>(self, c: &'c str, id: &str) -> Read<'c> {
        match self {
            Part::Entries => Read::FirstKey(
                Table::Outbox,
                OUTBOX_BY_RECORD,
                Value::Array(vec![c.into(), id.into()]),
            ),
            _ => self.get(c, id),
        }
    }

    /// The cap of a range read for `n` records: a little room for ids in between (and, for
    /// entries, for a second pending entry of some records).
    pub(super) fn limit(self, n: usize) -> usize {
        match self {
            Part::Entries => 2 * n + 8,
            _ => n + n / 4 + 8,
        }
    }

    /// One read of this part for every id in `ids` (sorted, in IndexedDB's order).
    pub(super) fn range<'c>(self, c: &'c str, ids: &[&str]) -> Read<'c> {
        let (lo, hi) = (ids[0], ids[ids.len() - 1]);
        let (table, index, lo, hi) = match self {
            Part::Rows => (Table::Records(c), None, Key::str(lo), Key::str(hi)),
            Part::Aliases => (
                Table::Aliases,
                None,
                Key::Pair(c.into(), lo.into()),
                Key::Pair(c.into(), hi.into()),
            ),
            Part::Entries => (
                Table::Outbox,
                Some(OUTBOX_BY_RECORD),
                Key::Pair(c.into(), lo.into()),
                Key::Pair(c.into(), hi.into()),
            ),
        };
        Read::Range {
            table,
            index,
            lo,
            hi,
            limit: self.limit(ids.len()),
        }
    }

    /// Stores in `known` what `got` holds for the records it asks about, and returns which
    /// records `got` held, in its order. Only those asked for are decoded, so that one damaged
    /// value elsewhere in a range does not fail this write.
    pub(super) fn take(self, known: &mut Known, got: Vec<(Key, Value)>) -> Result<Vec<String>> {
        let mut found: Vec<String> = Vec::new();
        let mut saw = |id: &str| {
            if found.last().map(String::as_str) != Some(id) {
                found.push(id.to_string());
            }
        };
        for (k, v) in got {
            match self {
                Part::Rows => {
                    if let Key::Str(id) = k {
                        if let Some(slot) = known.rows.get_mut(&id) {
                            *slot = Row::from_stored(v)?;
                            saw(&id);
                        }
                    }
                }
                Part::Aliases => {
                    if let (Key::Pair(kc, tmp), Some(real)) = (k, v.as_str()) {
                        if kc == known.c && known.aliases.contains_key(&tmp) {
                            known.aliases.insert(tmp.clone(), Some(real.to_string()));
                            saw(&tmp);
                        }
                    }
                }
                Part::Entries => {
                    let r = (v.get("c").and_then(Value::as_str) == Some(known.c.as_str()))
                        .then(|| v.get("r").and_then(Value::as_str))
                        .flatten()
                        .map(str::to_string);
                    if let Some(r) = r {
                        if let Some(list) = known.entries.get_mut(&r) {
                            list.push(decode_entry((k, v))?);
                            saw(&r);
                        }
                    }
                }
            }
        }
        Ok(found)
    }
}
