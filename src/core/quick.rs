//! A single create that writes before it has read anything.
//!
//! A create usually finds what it expects: its id free (no row, no alias, nothing pending under
//! it) and the stored clock where this engine last left it. Reading that first costs a round
//! trip through IndexedDB before the writes can even be issued, which is most of what a single
//! create costs. So the reads that check those assumptions go out together with the writes, in
//! one transaction: IndexedDB runs a transaction's requests in order, so the reads see the store
//! as it stood before the writes. When every check holds, the transaction commits; when one
//! fails (another tab or a sync round moved the clock, the id is taken), it is dropped, which
//! rolls everything back, and the general path does the create from what it reads.

use serde_json::Value;

use super::clock::Env;
use super::config::CollectionConfig;
use super::engine::{Change, ChangeKind, Engine};
use super::error::Result;
use super::local::{temp_id, write_scope};
use super::mutation::{Entry, Kind};
use super::record::{changed_fields, id_key, Record, Row};
use super::storage::{Key, Read, Storage, Table, Txn, OUTBOX_BY_RECORD};
use super::tx::{ClockState, CLOCK};

/// What a write answers: the records written and the changes to announce.
type Written = (Vec<Option<Record>>, Vec<Change>);

impl<S: Storage, E: Env> Engine<S, E> {
    /// Creates `data` in `cfg`'s collection on the usual assumptions, checked as it writes.
    /// `None`: an assumption did not hold (or is not known yet), nothing was written, and the
    /// caller takes the general path.
    pub(crate) async fn quick_create(
        &self,
        cfg: &CollectionConfig,
        data: &Record,
    ) -> Result<Option<Written>> {
        let Some(seen) = self.clock_seen.borrow_mut().take() else {
            return Ok(None);
        };
        let (c, idp) = (cfg.name.as_str(), cfg.id_property.as_str());
        let Some(seq) = seen.seq.checked_add(1) else {
            return Ok(None);
        };
        let clock = ClockState {
            seq,
            hlc: seen.hlc.tick(self.env.now_ms().max(0.0) as u64),
            ..seen.clone()
        };
        let mut reads = vec![Read::Get(Table::State, Key::str(CLOCK))];
        let mut data = data.clone();
        let key = match data.get(idp) {
            Some(v) => {
                let key = id_key(v)?;
                reads.push(Read::Get(Table::Records(c), Key::str(&key)));
                reads.push(Read::Get(Table::Aliases, Key::Pair(c.into(), key.clone())));
                let pair = Value::Array(vec![c.into(), key.as_str().into()]);
                reads.push(Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, pair));
                key
            }
            None => {
                let key = temp_id(&clock.node, seq);
                data.insert(idp.to_string(), Value::String(key.clone()));
                key
            }
        };
        let row = Row::new(cfg, data);
        let mut fields = changed_fields(&Record::new(), &row.d);
        fields.retain(|f| f != idp);
        let entry = Entry {
            fields,
            ..Entry::new(seq, &clock.node, clock.hlc, c, &key, Kind::Create)
        };
        let writes = [
            (Table::Records(c), Key::str(&key), Some(row.to_value())),
            (
                Table::Outbox,
                Key::Num(seq),
                Some(serde_json::to_value(&entry).expect("an entry is JSON")),
            ),
            (
                Table::State,
                Key::str(CLOCK),
                Some(serde_json::to_value(&clock).expect("the clock is JSON")),
            ),
        ];
        // A create started before this one commits builds on it; if this one fails, so does that.
        self.saw_clock(Some(clock.clone()));
        let tx = self.begin_in(true, &write_scope(c)).await?;
        let held = match tx.t.read_then_write(&reads, &writes).await {
            Ok(got) => {
                let stored = got[0].first().map(|(_, v)| v.clone());
                let stored = stored.and_then(|v| serde_json::from_value(v).ok());
                stored.as_ref() == Some(&seen) && got[1..].iter().all(Vec::is_empty)
            }
            Err(_) => false, // the general path meets the same error and reports it
        };
        if !held {
            self.saw_clock(None);
            return Ok(None); // dropping `tx` rolls the writes back
        }
        if let Err(e) = tx.t.commit().await {
            self.saw_clock(None);
            return Err(e);
        }
        let id = cfg.id_of(&row.d, &key);
        let change = Change::local(ChangeKind::Created, c, id, Some(row.d.clone()));
        Ok(Some((vec![Some(row.d)], vec![change])))
    }
}
