//! Aliases: the server id a temporary id became. A flush round acknowledges up to `batchSize`
//! creates, and one stored value per alias was a third of a round's writes (each IndexedDB
//! request costs the main thread 50-90 µs and the backend as much again). So the aliases of the
//! temporary ids Ferry makes are kept in buckets of a hundred neighbours: the `state` value
//! `aliases:<the id but its last two digits>:<collection>`, an object of temporary id to server
//! id, written once per transaction. Any other id that moved (an id the app chose that the
//! server replaced, a server id that changed when a record was created again), and every alias
//! written before buckets, has its own value in the `aliases` table; a lookup reads both at
//! once, and the bucket wins.
//!
//! A tab still running a Ferry from before buckets (or a downgrade) reads only the `aliases`
//! table: there a temporary id acknowledged since finds nothing (the record is there, under
//! its server id).

use serde_json::{Map, Value};

use super::{Known, Tx};
use crate::core::error::Result;
use crate::core::local::TEMP_PREFIX;
use crate::core::storage::{Key, Read, Table, Txn};

/// One bucket as this transaction sees it.
#[derive(Default)]
pub(super) struct Bucket {
    /// What storage holds (empty where there is nothing), once read.
    stored: Option<Map<String, Value>>,
    /// This transaction's changes, written at its commit: a server id, or null (forgotten).
    /// (`serde_json`'s map, not a map of options: one map type fewer in the wasm.)
    staged: Map<String, Value>,
}

impl Bucket {
    fn get(&self, tmp: &str) -> Option<Option<String>> {
        if let Some(s) = self.staged.get(tmp) {
            return Some(s.as_str().map(str::to_string));
        }
        let stored = self.stored.as_ref()?;
        Some(stored.get(tmp).and_then(Value::as_str).map(str::to_string))
    }
}

/// The buckets a transaction has read or changed, by key: a few, so a list (a hash map of
/// `Key`s, with a map of options for `staged`, cost 1.4 KB of gzipped wasm more).
#[derive(Default)]
pub(super) struct Buckets(Vec<(Key, Bucket)>);

impl Buckets {
    fn get(&self, k: &Key) -> Option<&Bucket> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, b)| b)
    }

    fn entry(&mut self, k: Key) -> &mut Bucket {
        let i = match self.0.iter().position(|(x, _)| *x == k) {
            Some(i) => i,
            None => {
                self.0.push((k, Bucket::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }
}

/// The key of the bucket holding the alias of `id` of collection `c`, when `id` is a temporary
/// id as Ferry makes them (`tmp-<node>-<position, ten digits or more>`).
pub(crate) fn bucket_key(c: &str, id: &str) -> Option<Key> {
    let rest = id.strip_prefix(TEMP_PREFIX)?;
    let (node, digits) = rest.rsplit_once('-')?;
    let ours = !node.is_empty() && digits.len() >= 10 && digits.bytes().all(|b| b.is_ascii_digit());
    ours.then(|| Key::Str(format!("aliases:{}:{c}", &id[..id.len() - 2])))
}

impl<T: Txn> Tx<T> {
    /// The server id a temporary id became, if it did.
    pub async fn alias(&self, c: &str, tmp: &str) -> Result<Option<String>> {
        let bucket = bucket_key(c, tmp);
        if let Some(b) = bucket
            .as_ref()
            .and_then(|k| self.buckets.borrow().get(k)?.get(tmp))
        {
            // Written or forgotten by this transaction, or in the bucket as read.
            if b.is_some() || self.staged(bucket.as_ref(), tmp) {
                return Ok(b);
            }
        }
        if let Some(known) = self.known.borrow().as_ref().filter(|k| k.c == c) {
            if let Some(real) = known.aliases.get(tmp) {
                return Ok(real.clone());
            }
        }
        let single = Read::Get(Table::Aliases, Key::Pair(c.into(), tmp.into()));
        let Some(bk) = bucket else {
            let got = self.t.read_many(&[single]).await?;
            return Ok(single_alias(got.into_iter().next()));
        };
        let mut got = self
            .t
            .read_many(&[Read::Get(Table::State, bk.clone()), single])
            .await?
            .into_iter();
        self.learn_bucket(bk.clone(), got.next());
        let from_bucket = self.buckets.borrow().get(&bk).and_then(|b| b.get(tmp));
        Ok(match from_bucket {
            Some(Some(real)) => Some(real),
            _ => single_alias(got.next()),
        })
    }

    /// Stores that temporary id `tmp` of `c` became `real`.
    pub fn put_alias(&self, c: &str, tmp: &str, real: &str) -> Result<()> {
        match bucket_key(c, tmp) {
            Some(bk) => self.stage(bk, tmp, Some(real.to_string())),
            None => self.t.put(
                Table::Aliases,
                &Key::Pair(c.into(), tmp.into()),
                &Value::String(real.into()),
            )?,
        }
        if let Some(known) = self.known.borrow_mut().as_mut().filter(|k| k.c == c) {
            known
                .aliases
                .insert(tmp.to_string(), Some(real.to_string()));
        }
        Ok(())
    }

    /// Forgets that temporary id `tmp` of `c` named a record: it was deleted (a server that
    /// gives its ids out again must not have the old temporary id find the next record).
    pub fn delete_alias(&self, c: &str, tmp: &str) -> Result<()> {
        // Written before buckets, or not one of Ferry's temporary ids.
        self.t
            .delete(Table::Aliases, &Key::Pair(c.into(), tmp.into()))?;
        if let Some(bk) = bucket_key(c, tmp) {
            self.stage(bk, tmp, None);
        }
        if let Some(known) = self.known.borrow_mut().as_mut().filter(|k| k.c == c) {
            known.aliases.insert(tmp.to_string(), None);
        }
        Ok(())
    }

    /// Reads the buckets of those of `ids` (collection and id) that are temporary ids, unless
    /// read already, in one round trip: what an alias lookup or the commit then needs is known.
    /// A flush round reads those of the creates it sent before it applies their answers.
    pub async fn read_buckets<'a>(
        &self,
        ids: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<()> {
        self.fetch_buckets(self.unread_buckets(ids)).await
    }

    /// Reads buckets `keys` in one round trip and keeps what they hold.
    async fn fetch_buckets(&self, keys: Vec<Key>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let reads: Vec<Read> = keys
            .iter()
            .map(|k| Read::Get(Table::State, k.clone()))
            .collect();
        let got = self.t.read_many(&reads).await?;
        for (k, g) in keys.into_iter().zip(got) {
            self.learn_bucket(k, Some(g));
        }
        Ok(())
    }

    /// The keys of the buckets of those of `ids` (collection and id) that are temporary ids,
    /// each once, unless read already.
    pub(super) fn unread_buckets<'a>(
        &self,
        ids: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Vec<Key> {
        let buckets = self.buckets.borrow();
        let mut keys: Vec<Key> = Vec::new();
        for (c, id) in ids {
            if let Some(k) = bucket_key(c, id) {
                let read = buckets.get(&k).is_some_and(|b| b.stored.is_some());
                if !read && !keys.contains(&k) {
                    keys.push(k);
                }
            }
        }
        keys
    }

    /// Fills in, for the temporary ids among `asked` whose alias the prefetch looked for, what
    /// their buckets (read with the prefetch's second round trip) say: a bucket's alias is newer
    /// than one under the id's own key.
    pub(super) fn prefetch_buckets(&self, known: &mut Known, asked: &[String]) {
        let buckets = self.buckets.borrow();
        for id in asked {
            let Some(b) = bucket_key(&known.c, id).and_then(|k| buckets.get(&k)?.get(id)) else {
                continue;
            };
            if b.is_some() {
                known.aliases.insert(id.clone(), b);
            }
        }
    }

    /// Writes the buckets this transaction changed, each once, merged into what storage holds
    /// (read first where it was not).
    pub(super) async fn write_buckets(&self) -> Result<()> {
        let unread: Vec<Key> = self
            .buckets
            .borrow()
            .0
            .iter()
            .filter(|(_, b)| !b.staged.is_empty() && b.stored.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        self.fetch_buckets(unread).await?;
        for (k, b) in self.buckets.borrow_mut().0.iter_mut() {
            if b.staged.is_empty() {
                continue;
            }
            let mut merged = b.stored.take().unwrap_or_default();
            let had = !merged.is_empty();
            for (tmp, real) in std::mem::take(&mut b.staged) {
                match real {
                    Value::String(_) => merged.insert(tmp, real),
                    _ => merged.remove(&tmp),
                };
            }
            if !merged.is_empty() {
                self.t
                    .put(Table::State, k, &Value::Object(merged.clone()))?;
            } else if had {
                self.t.delete(Table::State, k)?;
            }
            b.stored = Some(merged);
        }
        Ok(())
    }

    fn staged(&self, bk: Option<&Key>, tmp: &str) -> bool {
        let buckets = self.buckets.borrow();
        bk.and_then(|k| buckets.get(k))
            .is_some_and(|b| b.staged.contains_key(tmp))
    }

    fn stage(&self, bk: Key, tmp: &str, real: Option<String>) {
        let mut buckets = self.buckets.borrow_mut();
        let real = real.map_or(Value::Null, Value::String);
        buckets.entry(bk).staged.insert(tmp.to_string(), real);
    }

    /// Keeps what a read of bucket `bk` answered (a value that is not an object holds nothing).
    pub(super) fn learn_bucket(&self, bk: Key, got: Option<Vec<(Key, Value)>>) {
        let stored = match got.and_then(|g| g.into_iter().next()) {
            Some((_, Value::Object(m))) => m,
            _ => Map::new(),
        };
        let mut buckets = self.buckets.borrow_mut();
        let b = buckets.entry(bk);
        if b.stored.is_none() {
            b.stored = Some(stored);
        }
    }
}

/// The server id in an answer to a read of one alias under its own key.
fn single_alias(got: Option<Vec<(Key, Value)>>) -> Option<String> {
    let (_, v) = got?.into_iter().next()?;
    v.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ferrys_temporary_ids_have_buckets() {
        let k = bucket_key("todos", "tmp-ab12cd-0000001234");
        assert_eq!(
            k,
            Some(Key::Str("aliases:tmp-ab12cd-00000012:todos".into()))
        );
        // Its neighbours share it; the hundred after do not.
        assert_eq!(bucket_key("todos", "tmp-ab12cd-0000001299"), k);
        assert_ne!(bucket_key("todos", "tmp-ab12cd-0000001300"), k);
        assert_ne!(bucket_key("other", "tmp-ab12cd-0000001234"), k);
        for id in [
            "17",
            "tmp-",
            "tmp-x",
            "tmp-ab-12",
            "tmp--0000001234",
            "tmp-ab-00000012a4",
        ] {
            assert_eq!(bucket_key("todos", id), None, "{id}");
        }
    }
}
