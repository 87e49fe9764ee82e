//! The TypeScript types of the public API, written out so the generated `.d.ts` has no `any`.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** A JSON value, as records hold them. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [field: string]: JsonValue };
/** The `name` of every error Ferry throws or rejects with (README, "Errors"). */
export type FerryErrorName =
  | "ValidationError" | "NotFoundError" | "ConstraintError" | "UnknownCollectionError"
  | "ClosedError" | "StorageError" | "QuotaExceededError" | "OfflineError" | "NetworkError"
  | "ProtocolError";
/** An error from Ferry (a real `Error`): branch on `name`. */
export interface FerryError extends Error {
  name: FerryErrorName;
  /** The HTTP status, when the error is the server's answer (`NetworkError`, `ProtocolError`). */
  status?: number;
}
/** A record: a plain JSON object. */
export type FerryRecord = { [field: string]: JsonValue };
/** A record as a write takes it: a field set to `undefined` is left out, as JSON.stringify does. */
export type FerryInput = { [field: string]: JsonValue | undefined };
/** A record id: the server's (string or number) or a temporary client id (`tmp-…`). */
export type RecordId = string | number;
/**
 * A record as Ferry gives it back: its fields, with its id under `id` (the default
 * `idProperty`; a collection with another `idProperty` holds it in that field instead).
 */
export type StoredRecord = FerryRecord & { id: RecordId };
/**
 * What a write to a `Collection<T>` takes: some of `T`'s fields (one set to `undefined` is left
 * out). `db.collection<Todo>("todos")` types a collection's records as your own interface;
 * Ferry does not check them against it (the server may add fields), it only types them.
 */
export type RecordInput<T> = { [K in keyof T]?: T[K] | undefined };

/** One collection: a REST resource (PROTOCOL.md) and its local table. */
export interface CollectionOptions {
  /** The resource's base URL, e.g. `/api/todos`. */
  url: string;
  /** Field holding the id (default `id`). */
  idProperty?: string;
  /** Field carrying the temporary id on create (default `clientId`). */
  clientIdProperty?: string;
  /** Field holding the server's version (default `version`). */
  versionProperty?: string;
  /** Where an envelope answer keeps its records (default `data`). */
  rootProperty?: string;
  /**
   * Sencha's `successProperty` (default `success`): a 2xx answer whose JSON object sets it to
   * `false` is a refusal (the write goes to `rejected()`) or a failed read. `null` or `false`
   * turn it off.
   */
  successProperty?: string | null | false;
  /**
   * Top-level fields with an IndexedDB index; `query` on them does not scan. Plain field names
   * only (`"meta.k"` is a `ValidationError`), though `where` and `orderBy` take dotted ones.
   */
  indexes?: string[];
  /** Fields that hold ids of another collection's records, e.g. `{ projectId: "projects" }`. */
  refs?: { [field: string]: string };
  /** `PUT` sends the whole record (default); `PATCH` only the changed fields. */
  updateMethod?: "PUT" | "PATCH";
  /** How conflicts are settled (default `merge`). */
  conflict?: "merge" | "serverWins" | "clientWins" | "custom";
  /** Under `merge`, who wins a field both sides changed (default `server`). */
  tie?: "server" | "local";
}

/** Options of `Ferry.open`. */
export interface FerryOptions {
  /** The IndexedDB database name. */
  name: string;
  /** The collections by name. */
  collections: { [name: string]: CollectionOptions };
  /** Where batches go (PROTOCOL.md section 6); without it each mutation is its own request. */
  batchUrl?: string;
  /** At most this many mutations per batch (default 100). */
  batchSize?: number;
  /** Pull every collection after the outbox drains on reconnect and in `sync()` (default true). */
  pullAfterFlush?: boolean;
  /** Sync by itself: on open, on `online`, shortly after writes (default true). */
  autoSync?: boolean;
  /** Delay between a local write and its flush, so a burst is one flush (default 50 ms). */
  debounceMs?: number;
  /** Headers sent with every request. */
  headers?: { [name: string]: string };
  /** Abort a request after this long (default 30000 ms). */
  timeoutMs?: number;
  /** Open offline, as if `setOffline(true)` came first (default false). */
  offline?: boolean;
  /** Also pull every collection this often while online, also while a mutation waits for its retry (ms; default 0: off). */
  pullIntervalMs?: number;
  /**
   * Statuses that mean "not authorised" as 401 does: 403 from a session or CSRF check, 419
   * (Laravel). They ask `getHeaders` again and pause the queue instead of rejecting the write.
   */
  authStatuses?: number[];
  /** Whether requests carry cookies, as `fetch`'s `credentials` (default `"same-origin"`). */
  credentials?: "same-origin" | "include" | "omit";
  /**
   * Asked at the start of every sync run and read, and again after a 401; returns headers such
   * as Authorization (a number or boolean is sent as text, `null` leaves the header out).
   * Overlapping calls share one answer; keep it cheap.
   */
  getHeaders?: () => FerryHeaders | Promise<FerryHeaders>;
  /**
   * Settles conflicts of collections whose policy is `custom`: return the record to keep, `null`
   * to delete it, or `"defer"` to decide later through `db.conflicts()`. Throwing leaves the
   * conflict listed as failed.
   */
  resolveConflict?: (conflict: ConflictInput) => ConflictAnswer | Promise<ConflictAnswer>;
}

/** Headers `getHeaders` gives. */
export type FerryHeaders = { [name: string]: string | number | boolean | null };

/** What a custom resolver is given. */
export interface ConflictInput {
  collection: string;
  id: string;
  kind: "create" | "update" | "delete";
  /** The server's record the local change was made on. */
  base: FerryRecord | null;
  /** The local record (null for a local delete). */
  local: FerryRecord | null;
  /** The server's record (null when the server deleted it). */
  server: FerryRecord | null;
}

/** What a custom resolver returns. */
export type ConflictAnswer = FerryRecord | null | "defer";

/** A conflict waiting for a decision (`db.conflicts()`). */
export interface OpenConflict {
  /** Pass it to `resolveConflict` or `discardConflict`. */
  conflictId: string;
  collection: string;
  recordId: string;
  kind: "create" | "update" | "delete";
  base: FerryRecord | null;
  local: FerryRecord | null;
  server: FerryRecord | null;
  serverVersion: string | null;
  /** `open`: waiting for the resolver; `deferred`: it said "defer"; `failed`: it threw. */
  state: "open" | "deferred" | "failed";
  error: string | null;
  at: number;
  /** The change's place in the outbox: conflicts are listed, and their records go on, in it. */
  seq: number;
}

/** A query: equality filters, one sort field, offset and limit. */
export interface Query {
  /**
   * Field equalities that must all hold; `null` also matches a missing field. A `refs` field
   * (and the `idProperty`) matches by id: `7` and `"7"` alike, a temporary id after its rename.
   * A dotted name that is not a top-level field reaches into nested objects (`"meta.pinned"`).
   */
  where?: { [field: string]: JsonValue };
  /** Sort by this field (a dotted name reaches into nested objects). */
  orderBy?: string;
  /** Sort descending. */
  desc?: boolean;
  /** Skip this many. */
  offset?: number;
  /** At most this many. */
  limit?: number;
}

/** A committed change of one record. */
export interface Change<T = StoredRecord> {
  type: "created" | "updated" | "deleted";
  collection: string;
  id: RecordId;
  /** The record after the change (absent for deletes). */
  record?: T;
  /** True when the change came from the server (an answer or a pull). */
  remote: boolean;
  /**
   * The id the record had until this change gave it `id`: a create's acknowledgement carries
   * the temporary id here (an `idChange` event says the same to `db.on` listeners).
   */
  previousId?: string;
}

/** A pending mutation, as `outbox()` lists it. */
export interface OutboxEntry {
  /** The mutation id, sent as the Idempotency-Key. */
  mutationId: string;
  collection: string;
  recordId: string;
  kind: "create" | "update" | "delete";
  /**
   * Create: the record; update: changed fields with current values; delete: empty. In flight:
   * what was sent (and is sent again), whatever the record became since.
   */
  changes: FerryRecord;
  /** The server's record the change was made on (null if the server never saw it). */
  base: FerryRecord | null;
  /** When it was made (ms since epoch, hybrid logical clock). */
  madeAt: number;
  /** When it last changed. */
  changedAt: number;
  attempts: number;
  /**
   * Its request is fixed: a sync run picked it (and may not have sent it yet: without a
   * `batchUrl` a run sends its writes one at a time), or it was sent and awaits an
   * acknowledgement. It is sent (again) exactly as it is (same body, same Idempotency-Key) and
   * no later change folds into it. After a failed attempt it stays true, with `error` and
   * `retryAt` set; `attempts` counts the sends.
   */
  inFlight: boolean;
  error: string | null;
  retryAt: number | null;
}

/** A mutation the server refused for good. */
export interface RejectedMutation {
  mutationId: string;
  collection: string;
  recordId: string;
  kind: "create" | "update" | "delete";
  /**
   * The server's status: a 4xx, a 2xx whose body said `successProperty: false` (Sencha's way),
   * or 0 for `rejectPending`.
   */
  status: number;
  /** The server's answer body (text, cut at 16 KiB). */
  body: string;
  record: FerryRecord | null;
  /** The fields the change set: an update's changed fields; a create's record fields. */
  fields: string[];
  /** For an update: the values the rejection put back (null where it removed a field). */
  restored?: FerryRecord;
  /** For a delete made by the record's temporary id: that id. */
  temporaryId?: string;
  at: number;
}

/** A temporary id that became the server's. */
export interface IdChange { collection: string; from: string; to: RecordId; }

/** A conflict and how it was settled. */
export interface ConflictEvent {
  collection: string;
  /** The record's id, as its record holds it (a number stays a number, as in a `Change`). */
  id: RecordId;
  kind: "create" | "update" | "delete";
  base: FerryRecord | null;
  local: FerryRecord | null;
  server: FerryRecord | null;
  result: FerryRecord | null;
  policy: string;
  resent: boolean;
  /** True when the conflict waits in `db.conflicts()` rather than being settled. */
  open: boolean;
}

/** The sync status. */
export interface SyncStatus {
  online: boolean;
  flushing: boolean;
  /** This tab is the one that flushes (tabs of one store elect one through Web Locks). */
  leader: boolean;
  pending: number;
  rejected: number;
  /** Why the last sync run failed, until one succeeds. */
  lastError: string | null;
  /** The `name` of that error (`"NetworkError"`, ...). */
  lastErrorName: FerryErrorName | null;
  /** Its HTTP status, when the server answered (a write's credentials refused: 401, also for a status named in `authStatuses`; a read keeps its own). */
  lastErrorStatus: number | null;
  nextRetryAt: number | null;
}

/** Events of `db.on`. */
export interface FerryEvents {
  change: Change;
  idChange: IdChange;
  rejected: RejectedMutation;
  conflict: ConflictEvent;
  status: SyncStatus;
}

/** `db.on`, typed by event, and `db.retryRejected`, whose changes are optional (merged into
 * the class `Ferry`). */
export interface Ferry {
  /**
   * Listens to `change`, `idChange`, `rejected`, `conflict` or `status` events. Returns the
   * function that stops listening.
   */
  on<K extends keyof FerryEvents>(kind: K, listener: (event: FerryEvents[K]) => void): () => void;
  /**
   * Makes a rejected mutation again (as a new mutation) and queues it. An update's fields that
   * changed since the rejection keep the newer value (nothing left: a `ValidationError`). `changes`
   * (for a create or an update; not the id) are made over it in the same mutation: the fix for
   * what the server refused.
   */
  retryRejected(mutationId: string, changes?: Partial<FerryRecord>): Promise<void>;
}

/** `collection.pull`, whose options are optional (merged into the class `Collection`). */
export interface Collection {
  /**
   * Reads the collection from the server now and merges it (a `since` delta when the server
   * gave a cursor). Records with pending local changes keep them. `{ full: true }` reads
   * everything instead, as a first pull does: records the server no longer has (and that have
   * no pending change) go, whatever the deltas said.
   */
  pull(options?: { full?: boolean }): Promise<void>;
}
"#;
