//! Sending a picked round: batch requests of at most the batch cap, or one request per
//! mutation. The cap halves after a batch fails in a way a smaller one may not (too slow, too
//! large, one mutation in it the server cannot take) and grows back with answered batches. A
//! request or batch that fails does not hold back the rest of the round; two failures in a row
//! (the server is down) stop it.

use std::cell::Cell;

use crate::core::clock::Env;
use crate::core::engine::Engine;
use crate::core::error::Result;
use crate::core::mutation::Entry;
use crate::core::record::Record;
use crate::core::storage::{Storage, Table};

use super::batch;
use super::classify::Verdict;
use super::flush::join_all;
use super::http::{HttpRequest, HttpResponse, NetError, Transport};
use super::out_marks::creates_in;
use super::report::Report;
use super::request::{quote_version, to_http};
use super::server_state::Before;

/// What came back for a sent round.
pub(super) struct Sent {
    /// The answers of the first entries, in order (all of them unless the round stopped).
    pub(super) verdicts: Vec<Verdict>,
    /// For each of `verdicts`, whether its entry left in a request (else it was decided before:
    /// found on the server, held, or read first).
    pub(super) left: Vec<bool>,
    /// The browser was offline: the rest never left.
    pub(super) offline: bool,
    /// The batch endpoint does not exist: the rest was not sent.
    pub(super) no_batch: bool,
    /// The versions `read_first` found the records of these entries (by index) at, which their
    /// requests named in `If-Match`: kept in the entries that stay queued, so that a write sent
    /// again after a lost answer names the same version (under the same `Idempotency-Key`),
    /// rather than reading the record again and taking its own change, landed, for another's.
    pub(super) pinned: Vec<(usize, String)>,
}

impl Sent {
    /// Whether the queue goes on after these answers to `picked` with nothing to send first:
    /// every entry answered, each with an acknowledgement or a rejection.
    pub(super) fn goes_on(&self, picked: &[Entry]) -> bool {
        !self.offline
            && !self.no_batch
            && self.verdicts.len() == picked.len()
            && self
                .verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Ack(..) | Verdict::Rejected { .. }))
    }
}

/// How one batch request went.
enum BatchSent {
    /// One verdict per mutation in it.
    Answered(Vec<Verdict>),
    /// The batch URL does not exist (404, 405, 501): batching is off from now on.
    Missing,
    /// Refused as a whole (another 4xx): its mutations go one by one.
    Refused,
    /// Too large (413): the cap is halved, and its mutations go again in smaller batches.
    TooLarge,
    /// The browser is offline: nothing left.
    Offline,
}

impl<S: Storage, E: Env> Engine<S, E> {
    /// Sends a picked round, in order: in batch requests of at most the batch cap when a batch
    /// URL is configured, else one request each. No transaction is open meanwhile.
    pub(super) async fn send<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        picked: &[Entry],
        report: &mut Report,
    ) -> Result<Sent> {
        let mut requests: Vec<HttpRequest> = picked
            .iter()
            .map(|e| to_http(e.sent.as_ref().expect("picked entries are frozen"), headers))
            .collect();
        let (mut early, pinned) = self
            .look_first(transport, headers, picked, &mut requests, report)
            .await;
        // The answers are read as to the requests that left, with the versions read first.
        let pinned_entries = super::request::pin_versions(picked, &pinned);
        if let Some(with_pins) = &pinned_entries {
            // Not written down, the pins are only lost: the writes then read first again.
            let _ = self.keep_pins(picked, with_pins, &pinned).await;
        }
        let picked = pinned_entries.as_deref().unwrap_or(picked);
        let mut sent = Sent {
            verdicts: Vec::with_capacity(picked.len()),
            left: Vec::with_capacity(picked.len()),
            offline: false,
            no_batch: false,
            pinned,
        };
        // Entries before this index go one by one (their batch was refused as a whole).
        let mut singly_until = 0;
        let mut failed_last = false;
        let mut i = 0;
        while i < picked.len() {
            // Closed (`close()`, or the database taken by another tab's upgrade): another tab
            // may lead and send these now. What was not sent goes from there, and what was sent
            // and not written down goes again under its key, as after a crash.
            if self.is_closed() {
                break;
            }
            if let Some(v) = early.get_mut(i).and_then(Option::take) {
                // A read first answered with `Retry-After` pauses the round as a write's does.
                let paused = asks_pause(&v);
                sent.verdicts.push(v);
                sent.left.push(false);
                i += 1;
                if paused {
                    break;
                }
                continue;
            }
            // A batch ends before a write already decided.
            let run = match early.get(i..) {
                Some(rest) if !rest.is_empty() => rest.iter().take_while(|v| v.is_none()).count(),
                _ => usize::MAX,
            };
            let url = self
                .config
                .batch_url
                .clone()
                .filter(|_| !self.batch_off.get());
            let cap = self.batch_cap.get().clamp(1, self.config.batch_size);
            let n = match url {
                Some(_) if i >= singly_until => cap.min(picked.len() - i).min(run),
                _ => 1,
            };
            let batching = url.is_some() && i >= singly_until;
            let verdicts = match url.filter(|_| n > 1) {
                Some(url) => {
                    let (chunk, reqs) = (&picked[i..i + n], &requests[i..i + n]);
                    match self
                        .send_batch(transport, headers, url, chunk, reqs, report)
                        .await?
                    {
                        BatchSent::Answered(v) => v,
                        BatchSent::Missing => {
                            sent.no_batch = true;
                            return Ok(sent);
                        }
                        BatchSent::Refused => {
                            singly_until = i + n;
                            continue;
                        }
                        // The cap was halved: the same mutations go again, fewer at a time
                        // (at a cap of 1, as single requests), so this ends.
                        BatchSent::TooLarge => continue,
                        BatchSent::Offline => {
                            sent.offline = true;
                            return Ok(sent);
                        }
                    }
                }
                None => {
                    self.mark_out(&creates_in(&picked[i..=i]));
                    let a = transport.send(requests[i].clone()).await;
                    if matches!(a, Err(NetError::Offline)) {
                        sent.offline = true;
                        return Ok(sent);
                    }
                    report.requests += 1;
                    // Batches halved down to one mutation grow back with answered ones too (a
                    // 413 to a batch of two otherwise left batching off for good).
                    if batching && a.as_ref().is_ok_and(|r| (200..300).contains(&r.status)) {
                        self.adapt_batch_cap(&a, 1);
                    }
                    vec![
                        self.verdict(transport, headers, &picked[i], &a, report)
                            .await?,
                    ]
                }
            };
            i += verdicts.len();
            let unauthorized = verdicts.iter().any(|v| matches!(v, Verdict::Unauthorized));
            // A `Retry-After` (429, 503) asks the client to pause: nothing more goes this round.
            let paused = verdicts.iter().any(asks_pause);
            let failed = verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Transient { .. } | Verdict::Unauthorized));
            sent.left.extend(verdicts.iter().map(|_| true));
            sent.verdicts.extend(verdicts);
            // A 401 is the whole store's; two failures in a row are the server's, not one
            // mutation's: the rest waits for the retry.
            if unauthorized || paused || (failed && failed_last) {
                break;
            }
            failed_last = failed;
        }
        Ok(sent)
    }

    /// Writes the versions read first into the queued entries before their requests leave. A
    /// tab closed before the answer is written down then sends the write again at the version
    /// it was read at (under the same `Idempotency-Key`), rather than reading the record again
    /// and taking its own change, landed, under another device's for a conflict.
    async fn keep_pins(
        &self,
        picked: &[Entry],
        with_pins: &[Entry],
        pinned: &[(usize, String)],
    ) -> Result<()> {
        let tx = self.begin_in(true, &[Table::Outbox]).await?;
        let stored = join_all(
            pinned
                .iter()
                .map(|(i, _)| tx.entries_for(&picked[*i].c, &picked[*i].r))
                .collect(),
        )
        .await;
        for ((i, _), stored) in pinned.iter().zip(stored) {
            let (was, now) = (&picked[*i], &with_pins[*i]);
            // Only over the very request picked: an entry settled or discarded meanwhile stays.
            if stored?
                .iter()
                .any(|s| s.seq == was.seq && s.sent == was.sent)
            {
                tx.put_entry(now)?;
            }
        }
        tx.commit().await
    }

    /// What is known of `picked` before any is sent, by index: creates sent before may be on
    /// the server already (`landed.rs`); writes made on a record whose version is not known
    /// read the server's first (`read_first`): with its version they go with `If-Match` (added
    /// to `requests`, and returned by index), and a record that moved meanwhile is a conflict,
    /// decided without sending.
    async fn look_first<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        picked: &[Entry],
        requests: &mut [HttpRequest],
        report: &mut Report,
    ) -> (Vec<Option<Verdict>>, Vec<(usize, String)>) {
        let mut early = self.find_landed(transport, headers, picked, report).await;
        let want: Vec<(usize, &Record)> = picked
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.sent.as_ref()?.check.as_ref()?)))
            .collect();
        let mut collections: Vec<&str> = want.iter().map(|(i, _)| picked[*i].c.as_str()).collect();
        collections.sort_unstable();
        collections.dedup();
        let requests_made = Cell::new(0);
        let mut outcomes: Vec<(usize, Before)> = Vec::new();
        for c in collections {
            let mine: Vec<(usize, &Record)> = want
                .iter()
                .filter(|(i, _)| picked[*i].c == c)
                .copied()
                .collect();
            let Some(((first, base), rest)) = mine.split_first() else {
                continue;
            };
            // The first alone: it may show that the server keeps no versions (then none of the
            // others is read) or does not answer (then none waits as long). The rest at once,
            // so a round of them costs one round trip, not one each.
            let seen = self
                .read_first(transport, headers, &picked[*first], base, &requests_made)
                .await;
            let go_on = !matches!(seen, Before::Unreachable(_))
                && !self.versionless.borrow().iter().any(|v| v == c);
            if let Before::Unreachable(why) = &seen {
                let wait = |(i, _): &(usize, &Record)| (*i, Before::Unreachable(why.clone()));
                outcomes.extend(rest.iter().map(wait));
            }
            outcomes.push((*first, seen));
            if go_on {
                let reads: Vec<_> = rest
                    .iter()
                    .map(|(i, base)| {
                        self.read_first(transport, headers, &picked[*i], base, &requests_made)
                    })
                    .collect();
                let seen = join_all(reads).await;
                outcomes.extend(rest.iter().map(|(i, _)| *i).zip(seen));
            }
        }
        report.requests += requests_made.get();
        let mut pinned = Vec::new();
        for (i, seen) in outcomes {
            match seen {
                Before::Send(Some(v)) => {
                    requests[i]
                        .headers
                        .push(("If-Match".into(), quote_version(&v)));
                    pinned.push((i, v));
                }
                Before::Send(None) => {}
                Before::Moved(v) | Before::Unreachable(v) => {
                    early.resize_with(picked.len(), || None);
                    early[i] = Some(v);
                }
            }
        }
        (early, pinned)
    }

    /// Sends `chunk` (whose requests are `reqs`) as one batch request to `url`.
    async fn send_batch<T: Transport>(
        &self,
        transport: &T,
        headers: &[(String, String)],
        url: String,
        chunk: &[Entry],
        reqs: &[HttpRequest],
        report: &mut Report,
    ) -> Result<BatchSent> {
        report.requests += 1;
        let mut h: Vec<(String, String)> = headers.to_vec();
        h.push(("Content-Type".into(), "application/json".into()));
        let req = HttpRequest {
            method: "POST".into(),
            url,
            headers: h,
            body: Some(batch::encode(reqs)),
        };
        self.mark_out(&creates_in(chunk));
        let res = transport.send(req).await;
        if matches!(res, Err(NetError::Offline)) {
            return Ok(BatchSent::Offline);
        }
        self.adapt_batch_cap(&res, chunk.len());
        let status = res.as_ref().map_or(0, |r| r.status);
        if matches!(status, 404 | 405 | 501) {
            // No batch endpoint after all: one request per mutation from now on.
            self.batch_off.set(true);
            return Ok(BatchSent::Missing);
        }
        // A body too large for the server (or a proxy before it: Express's JSON parser takes
        // 100 kB by default) is no verdict on the mutations inside either; smaller batches
        // pass where one request per mutation would cost a round trip each, round after round.
        if status == 413 {
            return Ok(BatchSent::TooLarge);
        }
        // Any other 4xx but these refuses the batch as a whole (a shape this server reads
        // otherwise): no verdict on the mutations inside, which go one by one rather than wait
        // for ever on a batch that will never pass.
        let auth = self.config.is_auth_status(status);
        if (400..500).contains(&status) && !auth && !matches!(status, 408 | 425 | 429) {
            return Ok(BatchSent::Refused);
        }
        let (answers, unreadable) = split_batch(res, chunk.len(), auth);
        if unreadable {
            // A batch endpoint whose answers cannot be read (or trusted) sends the same batch
            // again at every retry: one request per mutation from now on.
            self.batch_off.set(true);
        }
        let mut verdicts = Vec::with_capacity(chunk.len());
        for (e, a) in chunk.iter().zip(answers) {
            verdicts.push(self.verdict(transport, headers, e, &a, report).await?);
        }
        Ok(BatchSent::Answered(verdicts))
    }

    /// Halves the batch cap after a batch request of `n` failed in a way a smaller one may not
    /// (timed out, cut off, answered 500, 502 or 504: too slow or too large for a gateway, or one
    /// request in it the server cannot take, which halving isolates; answered 413: too large),
    /// and raises it by an eighth (up to `batch_size`) after one was answered (or, at a cap of
    /// one, after a single request was). A server that fails at some size is tried
    /// near it again only now and then (a timeout costs `timeoutMs`), and one that was down for
    /// a while gets its full batches back within a few dozen. A 503 or 429 (busy, come back
    /// later) says nothing of the size.
    fn adapt_batch_cap(&self, res: &std::result::Result<HttpResponse, NetError>, n: usize) {
        let cap = self.batch_cap.get();
        let next = match res {
            Err(NetError::Timeout | NetError::Failed(_)) => (n / 2).max(1),
            Ok(r) if matches!(r.status, 413 | 500 | 502 | 504) => (n / 2).max(1),
            Ok(r) if (200..300).contains(&r.status) => cap.saturating_add((cap / 8).max(1)),
            _ => return,
        };
        self.batch_cap.set(next.min(self.config.batch_size));
    }
}

/// Whether `v` carries the server's request to pause (`Retry-After`), which holds for every
/// request to it, not only the one answered.
pub(super) fn asks_pause(v: &Verdict) -> bool {
    matches!(
        v,
        Verdict::Transient {
            retry_after: Some(_),
            ..
        }
    )
}

/// One answer per batched mutation: the batch's own failure applies to all of them. Also says
/// whether the batch was answered with a success whose body is not a batch answer.
fn split_batch(
    res: Result<HttpResponse, NetError>,
    n: usize,
    auth: bool,
) -> (Vec<Result<HttpResponse, NetError>>, bool) {
    let answers = match res {
        Ok(r) if (200..300).contains(&r.status) => match batch::decode(&r.body, n) {
            Ok(list) => list
                .into_iter()
                .map(|a| {
                    a.ok_or_else(|| {
                        let why = "the batch answer has no response for this request";
                        NetError::Unreadable(why.into(), r.status)
                    })
                })
                .collect(),
            Err(why) => return (vec![Err(NetError::Unreadable(why, r.status)); n], true),
        },
        // "Not authorised" for the batch is for each; anything else about the envelope is
        // never a verdict on the mutations inside, so it is retried rather than rejected.
        Ok(r) if auth => vec![Ok(r); n],
        Ok(r) => {
            let why = format!("the batch request was answered {}", r.status);
            let retry = r.header("Retry-After").map(|v| v.to_string());
            // A status that says "later" (503, 429...) is each mutation's, with its Retry-After.
            let later = matches!(r.status, 408 | 425 | 429 | 500..=599);
            (0..n)
                .map(|_| {
                    if !later && retry.is_none() {
                        return Err(NetError::Failed(why.clone()));
                    }
                    Ok(HttpResponse {
                        status: if later { r.status } else { 503 },
                        headers: retry
                            .iter()
                            .map(|v| ("Retry-After".to_string(), v.clone()))
                            .collect(),
                        body: String::new(),
                    })
                })
                .collect()
        }
        Err(e) => vec![Err(e); n],
    };
    (answers, false)
}
