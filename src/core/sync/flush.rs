//! One flush round: pick the next mutations (`pick.rs`; a read-write transaction freezes and
//! counts them), send them with no transaction open, then apply every answer in a new
//! transaction. A round of two batches overlaps the second one's pick and send with the first
//! one's send and apply.

use std::collections::HashSet;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::task::Poll;

use serde_json::Value;

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::error::{Error, ErrorKind, Result};
use crate::core::mutation::{Entry, Kind};
use crate::core::record::{Record, Row};
use crate::core::storage::{Read, Storage, Table, Txn, OUTBOX_BY_RECORD};
use crate::core::tx::{answered_key, Want};

use super::classify::{ServerState, Verdict};
use super::http::{NetError, Transport};
use super::pick::Picked;
use super::report::Report;
use super::request::client_id_of;
use super::round_end::worse;
pub use super::round_end::RoundEnd;
use super::send::Sent;

/// Runs `futures` at once (as [`join`]) and returns their outputs in order.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    poll_fn(|cx| {
        for (f, out) in futs.iter_mut().zip(outs.iter_mut()) {
            if out.is_none() {
                if let Poll::Ready(v) = f.as_mut().poll(cx) {
                    *out = Some(v);
                }
            }
        }
        if outs.iter().all(Option::is_some) {
            Poll::Ready(outs.iter_mut().filter_map(Option::take).collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Runs two futures at once (on one thread: each is polled when woken) and returns both
/// outputs.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut ra, mut rb) = (None, None);
    poll_fn(|cx| {
        if ra.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        match (ra.take(), rb.take()) {
            (Some(x), Some(y)) => Poll::Ready((x, y)),
            (x, y) => {
                (ra, rb) = (x, y);
                Poll::Pending
            }
        }
    })
    .await
}

/// After this many attempts of one mutation, a conflict also makes the flush wait.
const CONFLICT_ROUNDS: u32 = 3;

/// Capped exponential backoff with jitter: 1 s, 2 s, 4 s ... up to a minute, each scaled by a
/// random factor in [0.5, 1] so clients that failed together do not retry together.
pub fn backoff_ms(attempts: u32, random: u32) -> f64 {
    let exp = attempts.saturating_sub(1).min(16);
    let full = (1000.0 * f64::from(1u32 << exp)).min(60_000.0);
    let jitter = 0.5 + 0.5 * (f64::from(random) / f64::from(u32::MAX));
    full * jitter
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Runs one round: up to `batch_size` mutations, of distinct records, in one batch request
    /// when a batch URL is configured, else one request each, in order, until
    /// one fails. `headers` are the store's and the app's (auth) headers.
    pub async fn flush_round<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        report: &mut Report,
    ) -> Result<RoundEnd> {
        self.flush_round_emitting(transport, headers, &mut |r| report.extend(r))
            .await
    }

    /// [`Engine::flush_round`], handing each batch's report to `emit` as soon as its answers
    /// are committed (a round of two batches hands the first one's over while the second one
    /// is still out), also when the round then fails.
    pub async fn flush_round_emitting<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        emit: &mut dyn FnMut(Report),
    ) -> Result<RoundEnd> {
        // The server asked for a pause (`Retry-After`): nothing goes before it ends, whoever
        // asks for a round (`sync()`, another tab, the browser back online). Decided before
        // the pick, which marks what it picks as sent.
        let paused = match self.server_pause() {
            Some(until) if self.pending_count().await? > 0 => Some(until),
            _ => None,
        };
        if let Some(until) = paused {
            let secs = ((until - self.env.now_ms()) / 1000.0).ceil();
            return Ok(RoundEnd::Wait {
                reason: format!(
                    "the server asked for a pause (Retry-After): nothing is sent for {secs} s more"
                ),
                retry_at: until,
                kind: ErrorKind::Network,
                status: None,
            });
        }
        let first = self.pick_fitting(&HashSet::new(), None).await?;
        if first.entries.is_empty() {
            return Ok(RoundEnd::Idle);
        }
        // While the first batch is out, the next one is picked, and while the next one is out,
        // the first one's answers are applied: the network and IndexedDB work at the same time.
        // The next one leaves out every record the first pick looked at (sent, held back, or
        // with an earlier entry), and it is sent only after every answer to the first one was
        // an acknowledgement or a rejection: anything else (a conflict resent at the head of
        // the queue, a failure) must go first. A first pick stopped by a child waiting for its
        // parent, or at a write still to be stored, is not overlapped: that goes first.
        let mut rep_a = Report::default();
        let (sent, next) = if first.halted {
            let sent = self
                .send(transport, headers, &first.entries, &mut rep_a)
                .await;
            (sent, None)
        } else {
            let after = first.entries.iter().map(|e| e.seq).max();
            let (sent, next) = join(
                self.send(transport, headers, &first.entries, &mut rep_a),
                self.pick_fitting(&first.visited, after),
            )
            .await;
            // A next batch that cannot be picked now is picked by the next round, which then
            // reports why.
            (sent, next.ok().filter(|n| !n.entries.is_empty()))
        };
        let (next, sent) = match sent {
            Ok(sent) if sent.goes_on(&first.entries) => (next, sent),
            sent => {
                let end = match sent {
                    Ok(sent) => self.settle_sent(&first, sent, &mut rep_a).await,
                    Err(e) => Err(e),
                };
                emit(rep_a);
                if let Some(n) = next {
                    // Not sent: back to the queue as it was.
                    let mut r = Report::default();
                    let back =
                        self.apply_round(&n.entries, &n.fresh, &n.present, Vec::new(), &mut r);
                    let back = back.await;
                    emit(r);
                    back?;
                }
                return end;
            }
        };
        let Some(next) = next else {
            let end = self.settle_sent(&first, sent, &mut rep_a).await;
            emit(rep_a);
            return end;
        };
        let mut rep_b = Report::default();
        let (sent_next, end) = join(
            self.send(transport, headers, &next.entries, &mut rep_b),
            async {
                let end = self.settle_sent(&first, sent, &mut rep_a).await;
                emit(std::mem::take(&mut rep_a));
                end
            },
        )
        .await;
        // The next batch's answers are applied even when the first one's could not be: they
        // were sent, and a server that ignores Idempotency-Key must not get them twice.
        let end_next = match sent_next {
            Ok(sent) => self.settle_sent(&next, sent, &mut rep_b).await,
            Err(e) => Err(e),
        };
        emit(rep_b);
        let (end, end_next) = (end?, end_next?);
        Ok(match end_next {
            RoundEnd::Offline => RoundEnd::Offline,
            other => worse(end, other),
        })
    }

    /// Applies what came back for a sent batch.
    async fn settle_sent(&self, b: &Picked, sent: Sent, report: &mut Report) -> Result<RoundEnd> {
        let settled = super::out_marks::settled_creates(&b.entries, &sent);
        let pinned = super::request::pin_versions(&b.entries, &sent.pinned);
        let entries = pinned.as_deref().unwrap_or(&b.entries);
        let end = self
            .apply_all(entries, &b.fresh, &b.present, sent.verdicts, report)
            .await?;
        // Their outcomes are written down: the marks of their requests go.
        self.clear_marks(&settled);
        Ok(if sent.offline { RoundEnd::Offline } else { end })
    }

    /// Applies a round's answers in one transaction or, when that does not fit in the quota,
    /// in smaller ones (each entry's answer still applies whole, and once).
    async fn apply_all(
        &self,
        picked: &[Entry],
        fresh: &[bool],
        present: &[u64],
        verdicts: Vec<Verdict>,
        report: &mut Report,
    ) -> Result<RoundEnd> {
        let mut size = picked.len().max(1);
        let mut done = 0;
        let mut end = RoundEnd::Progress;
        while done < picked.len() {
            let hi = (done + size).min(picked.len());
            let vs: Vec<Verdict> = verdicts
                .iter()
                .skip(done)
                .take(hi.saturating_sub(done))
                .cloned()
                .collect();
            match self
                .apply_round(&picked[done..hi], &fresh[done..hi], present, vs, report)
                .await
            {
                Ok(e) => {
                    end = worse(end, e);
                    done = hi;
                }
                Err(e) if e.kind == ErrorKind::Quota && size > 1 => size = (size / 2).max(1),
                Err(e) => return Err(e),
            }
        }
        Ok(end)
    }

    /// Applies a round's verdicts in one read-write transaction. `verdicts` answer the first
    /// entries of `picked`; the others never left the client, so their attempt is undone and
    /// those frozen just now (`fresh`) open again to coalescing.
    async fn apply_round(
        &self,
        picked: &[Entry],
        fresh: &[bool],
        present: &[u64],
        verdicts: Vec<Verdict>,
        report: &mut Report,
    ) -> Result<RoundEnd> {
        let tx = self.begin(true).await?;
        // A round's acknowledged entries are usually neighbours: one range delete for them all.
        tx.group_entry_deletes(present.to_vec());
        // Read every row and pending entry the answers touch in one round trip, not one await
        // per read per answer: the rows and entries of the records sent, and the rows under
        // the server ids given to creates.
        // Acks look at rows and at the entries queued after the answered ones, never at aliases.
        let want = Want {
            aliases: false,
            entries: true,
        };
        let moving = self.moving_ids(picked, &verdicts)?;
        // The alias buckets the creates' acks will write to (`tx/aliases.rs`).
        let creates = picked.iter().filter(|e| e.kind == Kind::Create);
        let ((prefetched, found), buckets) = join(
            join(
                self.prefetch_records(&tx, picked.iter(), want),
                self.rows_under(&tx, picked, &moving),
            ),
            tx.read_buckets(creates.map(|e| (e.c.as_str(), e.r.as_str()))),
        )
        .await;
        prefetched?;
        buckets?;
        let mut verdicts = verdicts;
        self.refuse_taken_ids(&tx, picked, &mut verdicts, moving, found?)
            .await?;
        self.move_rows_first(&tx, picked, &verdicts)?;
        let mut end = RoundEnd::Progress;
        let mut step = Report::default();
        for (e, was_fresh) in picked.iter().zip(fresh).skip(verdicts.len()) {
            let mut back = e.clone();
            back.attempts = back.attempts.saturating_sub(1);
            if *was_fresh {
                back.sent = None;
            } else if back.error.is_none() {
                // The pick cleared its last error for this attempt's outcome: there is one,
                // and it says the send did not happen (not an outcome never written down).
                back.error = Some("not sent again: the round ended before it left".into());
            }
            tx.put_entry(&back)?;
        }
        let mut answered: Vec<&str> = Vec::new();
        let mut settled = false;
        // The latest time the server asked not to be sent anything before (`Retry-After`).
        let mut pause_until: Option<f64> = None;
        for (e, v) in picked.iter().zip(verdicts) {
            if matches!(
                v,
                Verdict::Ack(..) | Verdict::Rejected { .. } | Verdict::Conflict(_)
            ) && !answered.contains(&e.c.as_str())
            {
                answered.push(&e.c);
            }
            // A record that keeps meeting conflicts (a server that answers 409 to whatever is
            // sent) must not be resent in a tight loop: after a few rounds, wait like a failure.
            if matches!(v, Verdict::Conflict(_)) && e.attempts >= CONFLICT_ROUNDS {
                let at = self.env.now_ms() + backoff_ms(e.attempts, self.env.random_u32());
                end = worse(
                    end,
                    RoundEnd::Wait {
                        reason: "the server keeps answering with a conflict".into(),
                        retry_at: at,
                        kind: ErrorKind::Network,
                        status: None,
                    },
                );
            }
            settled |= matches!(v, Verdict::Ack(..) | Verdict::Rejected { .. });
            match v {
                Verdict::Ack(rec, ver) => self.apply_ack(&tx, e, rec, ver, &mut step).await?,
                Verdict::Rejected { status, body } => {
                    self.apply_reject(&tx, e, status, body, &mut step).await?
                }
                Verdict::Conflict(ServerState::Record(r, ver)) => {
                    if e.kind == Kind::Create {
                        self.create_conflict(&tx, e, r, ver, &mut step).await?
                    } else {
                        self.apply_conflict(&tx, e, Some((r, ver)), &mut step)
                            .await?
                    }
                }
                Verdict::Conflict(_) => self.apply_conflict(&tx, e, None, &mut step).await?,
                Verdict::Unauthorized => {
                    self.note_failure(&tx, e, "the server answered 401", None, false, false)?;
                    end = RoundEnd::Unauthorized;
                }
                Verdict::Transient {
                    reason,
                    retry_after,
                    kind,
                    status,
                } => {
                    // No answer, a success that could not be read, a server error or a gateway
                    // that gave up (after the write was stored, maybe): it may have been stored.
                    // Not when it was the read before it that failed: the write never left.
                    let read_first = reason.starts_with(super::server_state::READ_FIRST);
                    // So may a write the server says it is still processing (a 409 to it
                    // sent again: `still_processing`), which the next round looks for first.
                    let processing = reason.ends_with(super::processing::PROCESSING);
                    let unsure = !read_first
                        && (processing
                            || status.is_none_or(|s| {
                                (200..300).contains(&s) || matches!(s, 500 | 502 | 504)
                            }));
                    let at = self.note_failure(&tx, e, &reason, retry_after, unsure, read_first)?;
                    self.warn_if_stuck(e, status, read_first, &reason);
                    if retry_after.is_some() {
                        pause_until = Some(pause_until.unwrap_or(at).max(at));
                    }
                    // This entry's reason, the earliest time (a 401 stays a 401).
                    let wait = RoundEnd::Wait {
                        reason,
                        retry_at: at,
                        kind,
                        status,
                    };
                    end = worse(wait, end);
                }
                Verdict::Held { reason, until } => {
                    // Not sent: no attempt (the pick counted one). Attempts decide backoff,
                    // warnings and how long a 409 to a create is tried again.
                    let mut held = e.clone();
                    held.attempts = held.attempts.saturating_sub(1);
                    held.error = Some(reason);
                    held.retry_at = Some(until);
                    tx.put_entry(&held)?;
                    end = worse(end, RoundEnd::Held { until });
                }
            }
        }
        // Server state applied now may be newer than a snapshot a pull of the same collection
        // holds: tell it so.
        if !answered.is_empty() {
            let mark = serde_json::json!([self.env.now_ms(), self.env.random_u32()]);
            for c in answered {
                tx.t.put(Table::State, &answered_key(c), &mark)?;
            }
        }
        tx.commit().await?;
        report.extend(step);
        // A mutation that failed while others went through waits for its retry without holding
        // them back: the next round goes on at once (and sends it again first); only a round in
        // which nothing went through waits. A pause the server asked for (`Retry-After`) is
        // the whole server's: the round waits that long whatever else went through.
        if let Some(p) = pause_until {
            self.paused_until.set(Some(p));
        }
        match (&mut end, pause_until) {
            (RoundEnd::Wait { retry_at, .. }, Some(p)) => *retry_at = retry_at.max(p),
            (RoundEnd::Wait { .. } | RoundEnd::Held { .. }, None) if settled => {
                end = RoundEnd::Progress
            }
            _ => {}
        }
        Ok(end)
    }

    /// The creates of `picked` whose answers give them a new id: their index and that id.
    fn moving_ids(&self, picked: &[Entry], verdicts: &[Verdict]) -> Result<Vec<(usize, String)>> {
        let mut moving = Vec::new();
        for (i, (e, v)) in picked.iter().zip(verdicts.iter()).enumerate() {
            if let (Kind::Create, Verdict::Ack(rec, _)) = (e.kind, v) {
                let (_, skey) = super::apply::server_id(self.collection(&e.c)?, e, rec.as_ref());
                if skey != e.r {
                    moving.push((i, skey));
                }
            }
        }
        Ok(moving)
    }

    /// The stored rows under the new ids of `moving` (usually none). One read per collection
    /// (a round's are usually all of one): ids given out together are usually one key range.
    async fn rows_under<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        picked: &[Entry],
        moving: &[(usize, String)],
    ) -> Result<Vec<Option<Value>>> {
        let mut found: Vec<Option<Value>> = vec![None; moving.len()];
        let mut collections: Vec<&str> =
            moving.iter().map(|(i, _)| picked[*i].c.as_str()).collect();
        collections.sort_unstable();
        collections.dedup();
        for c in collections {
            let at: Vec<usize> = (0..moving.len())
                .filter(|j| picked[moving[*j].0].c == c)
                .collect();
            let keys: Vec<String> = at.iter().map(|j| moving[*j].1.clone()).collect();
            for (j, row) in at.into_iter().zip(tx.read_rows(c, &keys).await?) {
                found[j] = row;
            }
        }
        Ok(found)
    }

    /// Turns into failures the acknowledgements of creates whose server id a record here holds
    /// with changes of its own still to send (one the app created under that id, say): taken,
    /// such an answer would overwrite that record, and its own create would then send this
    /// one's data. A record here without pending changes is the server's to replace: an id the
    /// server gives out again (after a wipe, a restore) names the new record now. `found`: the
    /// rows under the new ids of `moving` ([`Engine::rows_under`]); the acknowledgements read
    /// them anyway, so they are handed to `tx` for those reads.
    async fn refuse_taken_ids<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        picked: &[Entry],
        verdicts: &mut [Verdict],
        moving: Vec<(usize, String)>,
        found: Vec<Option<Value>>,
    ) -> Result<()> {
        let mut held = Vec::new();
        for ((i, skey), got) in moving.iter().zip(found) {
            let c = picked[*i].c.as_str();
            match got {
                None => tx.learn_row(c, skey, None),
                Some(v) => {
                    if let Ok(row) = Row::from_value(v) {
                        tx.learn_row(c, skey, Some(row));
                    }
                    held.push((*i, skey));
                }
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        let pending: Vec<Read> = held
            .iter()
            .map(|(i, skey)| {
                let c = picked[*i].c.as_str();
                let pair = Value::Array(vec![c.into(), skey.as_str().into()]);
                Read::FirstKey(Table::Outbox, OUTBOX_BY_RECORD, pair)
            })
            .collect();
        let answers = tx.t.read_many(&pending).await?;
        for ((i, skey), got) in held.into_iter().zip(answers) {
            if !got.is_empty() {
                verdicts[i] = Verdict::Transient {
                    reason: format!(
                        "unexpected answer: the server gave the new record the id {skey:?}, \
                         which another record here holds, with changes not sent yet"
                    ),
                    retry_after: None,
                    kind: ErrorKind::Protocol,
                    status: None,
                };
            }
        }
        Ok(())
    }

    /// A create answered 409/412 with a record: our own record (a retried create) is an ack;
    /// anything else is a refusal.
    async fn create_conflict<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        e: &Entry,
        r: Record,
        ver: Option<String>,
        step: &mut Report,
    ) -> Result<()> {
        let cfg = self.collection(&e.c)?;
        if r.get(&cfg.client_id_property).and_then(Value::as_str) == Some(client_id_of(e)) {
            self.apply_ack(tx, e, Some(r), ver, step).await
        } else {
            let body = Value::Object(r).to_string();
            self.apply_reject(tx, e, 409, body, step).await
        }
    }

    /// Records a failed attempt on `e` and returns when to try again. `never_left`: the write
    /// itself was not sent (the read it makes first failed).
    fn note_failure<T: crate::core::storage::Txn>(
        &self,
        tx: &crate::core::tx::Tx<T>,
        e: &Entry,
        reason: &str,
        retry_after: Option<f64>,
        unsure: bool,
        never_left: bool,
    ) -> Result<f64> {
        let now = self.env.now_ms();
        // `Retry-After` is a least wait: one of 0 s (or a date already past) must not take the
        // backoff away, or a server that is down is asked again at once, without end.
        let backoff = now + backoff_ms(e.attempts, self.env.random_u32());
        let at = retry_after.map_or(backoff, |r| r.max(backoff));
        let mut e = e.clone();
        e.error = Some(reason.to_string());
        // Once unsure, for good: a send that got no answer may still land after a later one.
        e.unsure |= unsure;
        // Its read first failed (`never_left`): its first send is later than its freezing, and
        // the time a server may take over it counts from then (`processing.rs`).
        if never_left {
            if let Some(sent) = e.sent.as_mut() {
                sent.frozen_at = Some(now);
            }
        }
        e.retry_at = Some(at);
        tx.put_entry(&e)?;
        Ok(at)
    }

    /// Flushes until the outbox is empty or something stops it; returns how it stopped.
    /// The browser driver calls rounds itself (to honour pauses); tests use this.
    pub async fn flush<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
    ) -> Result<(RoundEnd, Report)> {
        let mut report = Report::default();
        loop {
            match self.flush_round(transport, headers, &mut report).await? {
                RoundEnd::Progress => continue,
                end => return Ok((end, report)),
            }
        }
    }
}

impl From<NetError> for Error {
    fn from(e: NetError) -> Self {
        match e {
            NetError::Offline => Error::new(ErrorKind::Offline, "the browser is offline"),
            other => Error::new(ErrorKind::Network, other.to_string()),
        }
    }
}
