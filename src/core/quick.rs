//! A single create that writes before it has read anything.
//!
//! A create usually finds what it expects: its id free (no row, no alias, nothing pending under
//! it) and the stored clock where this engine last left it. Reading that first costs a round
//! trip through IndexedDB before the writes can even be issued, which is most of what a single
//! create costs. So the reads that check those assumptions go out together with the writes, in
//! one transaction: IndexedDB runs a transaction's requests in order, so the reads see the store
//! as it stood before the writes. The row and the outbox entry are adds, which fail (alone)
//! where their key is taken, so those two keys need no read at all. When every check holds, the
//! transaction commits. When one fails (another tab moved the clock, the id is taken), what the
//! writes replaced is put back and the general path does the create from what it reads, in the
//! same transaction, so that the create keeps its place among the app's writes.

use serde_json::Value;

use super::clock::Env;
use super::config::CollectionConfig;
use super::engine::{Change, ChangeKind, Engine};
use super::error::Result;
use super::local::{temp_id, write_scope};
use super::mutation::{Entry, Kind};
use super::record::{changed_fields, id_key, Record, Row};
use super::storage::{write_each, Key, Read, Storage, Table, Txn, OUTBOX_BY_RECORD};
use super::tx::{ClockState, Tx, CLOCK};

/// What a write answers: the records written and the changes to announce.
pub(crate) type Written = (Vec<Option<Record>>, Vec<Change>);

/// How a quick create went.
pub(crate) enum Quick<T> {
    /// Written and committed.
    Done(Written),
    /// A check failed. What the writes replaced is put back, and the create is to be done the
    /// general way in this same transaction: a new one would run after those of writes the app
    /// called later (IndexedDB runs transactions in the order they are made), and those must
    /// see this create.
    Undone(T),
    /// Not tried: the stored clock is not known yet.
    NotTried,
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Creates `data` in `cfg`'s collection on the usual assumptions, checked as it writes.
    pub(crate) async fn quick_create(
        &self,
        cfg: &CollectionConfig,
        data: &Record,
    ) -> Result<Quick<Tx<S::Txn<'_>>>> {
        let Some(seen) = self.clock_seen.borrow_mut().take() else {
            return Ok(Quick::NotTried);
        };
        let (c, idp) = (cfg.name.as_str(), cfg.id_property.as_str());
        let Some(seq) = seen.seq.checked_add(1) else {
            return Ok(Quick::NotTried);
        };
        let clock = ClockState {
            seq,
            hlc: seen.hlc.tick(self.env.now_ms().max(0.0) as u64),
            ..seen.clone()
        };
        let mut data = data.clone();
        let given = data.get(idp).map(id_key).transpose()?;
        let key = match &given {
            Some(key) => key.clone(),
            None => {
                let key = temp_id(&clock.node, seq);
                data.insert(idp.to_string(), Value::String(key.clone()));
                key
            }
        };
        // What must be true for the writes to stand: the clock where this engine left it and,
        // for an id the app chose, no alias or pending change under it. The row and the outbox
        // position are added, not put: an add finds its key taken without a read of its own.
        let mut reads = vec![Read::Get(Table::State, Key::str(CLOCK))];
        if given.is_some() {
            // An id the app chose may be taken under another name or have changes pending.
            reads.push(Read::Get(Table::Aliases, Key::Pair(c.into(), key.clone())));
            let pair = Value::Array(vec![c.into(), key.as_str().into()]);
            reads.push(Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, pair));
        }
        let row = Row::new(cfg, data);
        let mut fields = changed_fields(&Record::new(), &row.d);
        fields.retain(|f| f != idp);
        let entry = Entry {
            fields,
            ..Entry::new(seq, &clock.node, clock.hlc, c, &key, Kind::Create)
        };
        let json = |v: Result<Value, serde_json::Error>| v.expect("always JSON");
        let adds = [
            (
                Table::Outbox,
                Key::Num(seq),
                json(serde_json::to_value(&entry)),
            ),
            (Table::Records(c), Key::str(&key), row.to_value()),
        ];
        let clock_key = Key::str(CLOCK);
        let writes = [(
            Table::State,
            clock_key.clone(),
            Some(json(serde_json::to_value(&clock))),
        )];
        // A create started before this one commits builds on it; if this one fails, so does that.
        self.saw_clock(Some(clock));
        let tx = self.begin_in(true, &write_scope(c)).await?;
        let (got, added) = match tx.t.read_then_write(&reads, &adds, &writes).await {
            Ok(got) => got,
            Err(e) => {
                self.saw_clock(None);
                return Err(e);
            }
        };
        let stored = got[0].first().map(|(_, v)| v.clone());
        let as_seen = stored
            .as_ref()
            .and_then(|v| serde_json::from_value::<ClockState>(v.clone()).ok())
            .is_some_and(|s| s == seen);
        if !as_seen || got[1..].iter().any(|g| !g.is_empty()) || added.contains(&false) {
            self.saw_clock(None);
            // Put back what the writes replaced: the clock as it was, and nothing where an
            // add wrote (an add that failed wrote nothing).
            let mut back = vec![(Table::State, clock_key, stored)];
            for ((table, key, _), wrote) in adds.into_iter().zip(added) {
                if wrote {
                    back.push((table, key, None));
                }
            }
            write_each(&tx.t, &back)?;
            return Ok(Quick::Undone(tx));
        }
        if let Err(e) = tx.t.commit().await {
            self.saw_clock(None);
            return Err(e);
        }
        let id = cfg.id_of(&row.d, &key);
        let change = Change::local(ChangeKind::Created, c, id, Some(row.d.clone()));
        Ok(Quick::Done((vec![Some(row.d)], vec![change])))
    }
}
