//! How a store and its collections are configured: the options of `Ferry.open`, with the field
//! names and defaults of PROTOCOL.md (Sencha's `idProperty`, `clientIdProperty`, `versionProperty`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{Error, Result};

/// How an update travels to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum UpdateMethod {
    /// `PUT {url}/{id}` with the whole record (Sencha's default).
    #[default]
    #[serde(rename = "PUT")]
    Put,
    /// `PATCH {url}/{id}` with only the changed fields (a removed field is sent as `null`).
    #[serde(rename = "PATCH")]
    Patch,
}
unit_enum_deserialize!(UpdateMethod {
    "PUT" => UpdateMethod::Put,
    "PATCH" => UpdateMethod::Patch,
});

/// How a conflict (409/412, or an update of a record the server deleted) is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ConflictPolicy {
    /// Field by field over base, local and server; a field changed on both sides follows `tie`.
    #[default]
    Merge,
    /// The server's record wins; the local change is dropped (with an event).
    ServerWins,
    /// The local change is sent again on top of the server's version.
    ClientWins,
    /// A JS resolver decides; without one the conflict waits in `conflicts()`.
    Custom,
}
unit_enum_deserialize!(ConflictPolicy {
    "merge" => ConflictPolicy::Merge,
    "serverWins" => ConflictPolicy::ServerWins,
    "clientWins" => ConflictPolicy::ClientWins,
    "custom" => ConflictPolicy::Custom,
});

/// Which side wins a field that both sides changed, under [`ConflictPolicy::Merge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TieRule {
    /// The server's value (the default: the server saw it first).
    #[default]
    Server,
    /// The local value.
    Local,
}
unit_enum_deserialize!(TieRule {
    "server" => TieRule::Server,
    "local" => TieRule::Local,
});

/// Whether `fetch` sends cookies (its `credentials`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Credentials {
    /// Only to the page's own origin (`fetch`'s default).
    #[default]
    #[serde(rename = "same-origin")]
    SameOrigin,
    /// Also to another origin: a cookie session on an API elsewhere (its CORS must allow it).
    #[serde(rename = "include")]
    Include,
    /// Never.
    #[serde(rename = "omit")]
    Omit,
}
unit_enum_deserialize!(Credentials {
    "same-origin" => Credentials::SameOrigin,
    "include" => Credentials::Include,
    "omit" => Credentials::Omit,
});

/// Statuses `authStatuses` may not name: they mean something else to the sync.
const NOT_AUTH: [u16; 12] = [400, 404, 405, 408, 409, 410, 412, 413, 414, 425, 429, 431];

/// One collection: a REST resource and its local table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CollectionConfig {
    /// The collection's name; filled in from the key of the `collections` map.
    #[serde(default)]
    pub name: String,
    /// The resource's base URL, such as `/api/todos`.
    pub url: String,
    /// The field holding a record's id.
    #[serde(default = "default_id")]
    pub id_property: String,
    /// The field that carries the temporary client id on create.
    #[serde(default = "default_client_id")]
    pub client_id_property: String,
    /// The field holding the server's version.
    #[serde(default = "default_version")]
    pub version_property: String,
    /// Where an envelope answer keeps its records.
    #[serde(default = "default_root")]
    pub root_property: String,
    /// Sencha's `successProperty`: a 2xx answer whose JSON object sets this field to `false`
    /// is the server refusing the write (or failing the read), not a success. `null`, `""` or
    /// `false` turn it off.
    #[serde(default = "default_success", deserialize_with = "success_field")]
    pub success_property: Option<String>,
    /// Fields with an IndexedDB index; queries on them do not scan.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// Fields that hold the id of a record of another collection: `{ projectId: "projects" }`.
    #[serde(default)]
    pub refs: BTreeMap<String, String>,
    /// PUT (whole record) or PATCH (changed fields).
    #[serde(default)]
    pub update_method: UpdateMethod,
    /// How conflicts are settled.
    #[serde(default)]
    pub conflict: ConflictPolicy,
    /// Under `merge`, who wins a field both sides changed.
    #[serde(default)]
    pub tie: TieRule,
    /// The store's `authStatuses`, copied here by [`StoreConfig::validate`].
    #[serde(skip)]
    pub auth_statuses: Vec<u16>,
    /// The origin of the page (`scheme://host:port`) that path URLs such as `url` resolve
    /// against, set by the browser layer: a read follows a `next` link only on its own origin.
    #[serde(skip)]
    pub page_origin: Option<String>,
}

fn default_id() -> String {
    "id".into()
}
fn default_client_id() -> String {
    "clientId".into()
}
fn default_version() -> String {
    "version".into()
}
fn default_root() -> String {
    "data".into()
}
fn default_success() -> Option<String> {
    Some("success".into())
}
/// `successProperty`: a field name, or `null`, `""` or `false` for none.
fn success_field<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Ok(Some(s)),
        serde_json::Value::String(_) | serde_json::Value::Null | serde_json::Value::Bool(false) => {
            Ok(None)
        }
        _ => Err(serde::de::Error::custom(
            "`successProperty` must be a field name, or null or false for none",
        )),
    }
}

impl CollectionConfig {
    /// Whether an answer with `status` means "not authorised" (401, or an `authStatuses` one).
    pub fn is_auth_status(&self, status: u16) -> bool {
        status == 401 || self.auth_statuses.contains(&status)
    }

    /// The id of record `d` as the app sees it (its own id field, a number or a string), or
    /// `key` where the record lacks one.
    pub fn id_of(&self, d: &super::record::Record, key: &str) -> serde_json::Value {
        d.get(&self.id_property)
            .cloned()
            .unwrap_or_else(|| key.into())
    }

    /// The `successProperty` in force: none when it is turned off.
    pub fn success_field(&self) -> Option<&str> {
        self.success_property.as_deref().filter(|s| !s.is_empty())
    }

    /// A collection with every default, for tests and examples.
    pub fn new(name: &str, url: &str) -> Self {
        CollectionConfig {
            name: name.into(),
            url: url.into(),
            id_property: default_id(),
            client_id_property: default_client_id(),
            version_property: default_version(),
            root_property: default_root(),
            success_property: default_success(),
            indexes: Vec::new(),
            refs: BTreeMap::new(),
            update_method: UpdateMethod::Put,
            conflict: ConflictPolicy::Merge,
            tie: TieRule::Server,
            auth_statuses: Vec::new(),
            page_origin: None,
        }
    }
}

/// The options of a whole store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StoreConfig {
    /// The IndexedDB database name.
    pub name: String,
    /// The collections by name.
    pub collections: BTreeMap<String, CollectionConfig>,
    /// Where batches go (PROTOCOL.md section 6); without it every mutation is its own request.
    #[serde(default)]
    pub batch_url: Option<String>,
    /// At most this many mutations in one batch request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Pull every collection after the outbox drains on reconnect.
    #[serde(default = "default_true")]
    pub pull_after_flush: bool,
    /// Start syncing by itself (on open, on `online`, after writes). Off: only `sync()` sends.
    #[serde(default = "default_true")]
    pub auto_sync: bool,
    /// How long after a local write the flush starts, so a burst of writes is one flush.
    #[serde(default = "default_debounce")]
    pub debounce_ms: u32,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A request that has not answered after this long counts as a network failure.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u32,
    /// Open the store offline, as if `setOffline(true)` came first: nothing is sent until
    /// `setOffline(false)`.
    #[serde(default)]
    pub offline: bool,
    /// Also pull every collection this often (ms) while online and idle, to see other devices'
    /// changes without a local write; 0 (the default) pulls only on reconnect and in `sync()`.
    #[serde(default)]
    pub pull_interval_ms: u32,
    /// Statuses that mean "not authorised", as 401 always does: 403 from a session or CSRF
    /// check, 419 (Laravel's "page expired"). Such an answer asks `getHeaders` again and pauses
    /// the queue, rather than rejecting the write and undoing it locally.
    #[serde(default)]
    pub auth_statuses: Vec<u16>,
    /// Whether requests carry cookies (`fetch`'s `credentials`).
    #[serde(default)]
    pub credentials: Credentials,
}

fn default_batch_size() -> usize {
    100
}
fn default_true() -> bool {
    true
}
fn default_debounce() -> u32 {
    50
}
fn default_timeout() -> u32 {
    30_000
}

impl StoreConfig {
    /// Whether any collection declares references (then a child waits for its parent's create).
    pub fn has_refs(&self) -> bool {
        self.collections.values().any(|c| !c.refs.is_empty())
    }

    /// A store with the given collections and every default.
    pub fn new(name: &str, collections: Vec<CollectionConfig>) -> Self {
        StoreConfig {
            name: name.into(),
            collections: collections
                .into_iter()
                .map(|c| (c.name.clone(), c))
                .collect(),
            batch_url: None,
            batch_size: default_batch_size(),
            pull_after_flush: true,
            auto_sync: true,
            debounce_ms: default_debounce(),
            headers: BTreeMap::new(),
            timeout_ms: default_timeout(),
            offline: false,
            pull_interval_ms: 0,
            auth_statuses: Vec::new(),
            credentials: Credentials::default(),
        }
    }

    /// Fills in names from the map keys and checks what serde cannot.
    pub fn validate(mut self) -> Result<Self> {
        if self.name.is_empty() {
            return Err(Error::validation("`name` must be a non-empty string"));
        }
        if self.batch_size == 0 {
            return Err(Error::validation("`batchSize` must be at least 1"));
        }
        // Browsers run a timer of 2^31 ms or more at once, so such a timeout would abort every
        // request as it leaves, and such an interval would pull without pause.
        let max = i32::MAX as u32;
        for (option, ms, least) in [
            ("timeoutMs", self.timeout_ms, 1),
            ("debounceMs", self.debounce_ms, 0),
            ("pullIntervalMs", self.pull_interval_ms, 0),
        ] {
            if ms < least || ms > max {
                return Err(Error::validation(format!(
                    "`{option}` must be from {least} to {max} (about 24.8 days), got {ms}"
                )));
            }
        }
        for &s in &self.auth_statuses {
            if !(400..500).contains(&s) || NOT_AUTH.contains(&s) {
                return Err(Error::validation(format!(
                    "`authStatuses`: {s} cannot mean \"not authorised\" (a 4xx other than \
                     400, 404, 405, 408, 409, 410, 412, 413, 414, 425, 429 and 431)"
                )));
            }
        }
        let names: Vec<String> = self.collections.keys().cloned().collect();
        for (name, c) in self.collections.iter_mut() {
            c.auth_statuses = self.auth_statuses.clone();
            if name.is_empty() {
                return Err(Error::validation(
                    "a collection name must be a non-empty string",
                ));
            }
            c.name = name.clone();
            if c.url.is_empty() {
                return Err(Error::validation(format!(
                    "collection `{name}` needs a `url`"
                )));
            }
            for (i, f) in c.indexes.iter().enumerate() {
                if c.indexes[..i].contains(f) {
                    return Err(Error::validation(format!(
                        "collection `{name}`: index `{f}` is declared twice"
                    )));
                }
                // IndexedDB key paths take identifiers only; a dot would mean a nested field.
                let ok = f
                    .chars()
                    .next()
                    .is_some_and(|ch| ch.is_alphabetic() || ch == '_' || ch == '$')
                    && f.chars()
                        .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '$');
                if !ok {
                    return Err(Error::validation(format!(
                        "collection `{name}`: index `{f}` must be a plain field name (letters, digits, `_`, `$`)"
                    )));
                }
            }
            for (field, target) in &c.refs {
                if !names.contains(target) {
                    return Err(Error::validation(format!(
                        "collection `{name}`: ref `{field}` names unknown collection `{target}`"
                    )));
                }
            }
            let props = [&c.id_property, &c.client_id_property, &c.version_property];
            for (i, p) in props.iter().enumerate() {
                if p.is_empty() {
                    return Err(Error::validation(format!(
                        "collection `{name}`: field names must be non-empty"
                    )));
                }
                // The client id would overwrite the id, or the version either of them.
                if props[..i].contains(p) {
                    return Err(Error::validation(format!(
                        "collection `{name}`: `idProperty`, `clientIdProperty` and \
                         `versionProperty` must be three different fields (`{p}` is named twice)"
                    )));
                }
            }
        }
        Ok(self)
    }

    /// Whether an answer with `status` means "not authorised" (401, or an `authStatuses` one).
    pub fn is_auth_status(&self, status: u16) -> bool {
        status == 401 || self.auth_statuses.contains(&status)
    }

    /// The collection called `name`.
    pub fn collection(&self, name: &str) -> Result<&CollectionConfig> {
        self.collections.get(name).ok_or_else(|| {
            Error::new(
                super::error::ErrorKind::UnknownCollection,
                format!("no collection `{name}` was declared in Ferry.open"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut CollectionConfig)) -> Result<StoreConfig> {
        let mut c = CollectionConfig::new("todos", "/api/todos");
        edit(&mut c);
        StoreConfig::new("db", vec![c]).validate()
    }

    #[test]
    fn options_that_cannot_work_are_refused_with_what_is_wrong() {
        assert!(check(|_| {}).is_ok());
        let refused = [
            check(|c| c.indexes = vec!["a".into(), "a".into()]),
            check(|c| c.indexes = vec!["a.b".into()]),
            check(|c| c.client_id_property = "id".into()),
            check(|c| c.version_property = "clientId".into()),
            check(|c| c.url = String::new()),
        ];
        let said = [
            "declared twice",
            "plain field name",
            "`id`",
            "`clientId`",
            "url",
        ];
        for (r, what) in refused.into_iter().zip(said) {
            let e = r.expect_err(what);
            assert_eq!(e.kind, super::super::error::ErrorKind::Validation);
            assert!(e.message.contains(what), "{}", e.message);
        }
    }

    #[test]
    fn success_property_takes_a_field_name_or_none() {
        let parse =
            |v: &str| serde_json::from_str::<CollectionConfig>(&format!(r#"{{"url":"/a"{v}}}"#));
        assert_eq!(parse("").unwrap().success_field(), Some("success"));
        let named = parse(r#","successProperty":"ok""#).unwrap();
        assert_eq!(named.success_field(), Some("ok"));
        for off in ["null", "false", "\"\""] {
            let c = parse(&format!(r#","successProperty":{off}"#)).unwrap();
            assert_eq!(c.success_field(), None, "{off}");
        }
        let e = parse(r#","successProperty":1"#).unwrap_err();
        assert!(e.to_string().contains("successProperty"), "{e}");
    }

    #[test]
    fn times_a_browser_timer_cannot_hold_are_refused() {
        let with = |edit: fn(&mut StoreConfig)| {
            let mut s = StoreConfig::new("db", vec![CollectionConfig::new("t", "/api/t")]);
            edit(&mut s);
            s.validate()
        };
        assert!(with(|s| s.timeout_ms = i32::MAX as u32).is_ok());
        assert!(with(|s| s.pull_interval_ms = 60_000).is_ok());
        for (edit, option) in [
            (with(|s| s.timeout_ms = 1 << 31), "timeoutMs"),
            (with(|s| s.timeout_ms = 0), "timeoutMs"),
            (
                with(|s| s.pull_interval_ms = 3_000_000_000),
                "pullIntervalMs",
            ),
            (with(|s| s.debounce_ms = u32::MAX), "debounceMs"),
        ] {
            let e = edit.expect_err(option);
            assert!(e.message.contains(option), "{}", e.message);
        }
    }
}
