//! Sync: turning outbox entries into requests, classifying the answers (PROTOCOL.md section 7),
//! and folding them back into local storage. Sans-IO at heart: the flush reads a batch in one
//! transaction, sends it with no transaction open, and applies the answers in another.

mod acked;
pub mod apply;
pub mod batch;
pub mod classify;
pub mod conflict;
mod cut;
mod excerpt;
pub mod flush;
pub mod http;
mod json_body;
mod landed;
mod out_marks;
mod page;
mod paging;
mod pick;
mod processing;
pub mod pull;
mod read_back;
mod redirected;
pub mod rejected;
pub mod report;
pub mod request;
mod round_end;
mod said_no;
mod send;
mod server_state;
pub mod settle;
mod untold;
