// A TypeScript app using Ferry: `tsc -p tests/types` must accept it, so the generated .d.ts types
// every method, option and result. The @ts-expect-error lines must stay errors.
import init, { Ferry, Collection } from "../../pkg/ferry.js";
import type { FerryRecord, StoredRecord, OutboxEntry, SyncStatus, Change, RejectedMutation, IdChange, OpenConflict, FerryError, RecordId } from "../../pkg/ferry.js";

/** The app's own record type, as `db.collection<Todo>(...)` takes it. */
interface Todo {
  id: RecordId;
  title: string;
  done?: boolean;
  meta?: { pinned: boolean };
}

export async function app(): Promise<void> {
  await init();
  const db: Ferry = await Ferry.open({
    name: "app",
    collections: {
      todos: { url: "/api/todos", indexes: ["done", "projectId"], refs: { projectId: "projects" } },
      projects: { url: "/api/projects", updateMethod: "PATCH", conflict: "serverWins", successProperty: null },
    },
    batchUrl: "/api/$batch",
    getHeaders: async () => ({ Authorization: "Bearer t", "X-Tenant": 3, "X-Debug": null }),
    authStatuses: [403, 419],
    credentials: "include",
    resolveConflict: async ({ local, server }) => (server ? { ...server, ...local } : "defer"),
  });
  const todos: Collection = db.collection("todos");
  const t: StoredRecord = await todos.create({ title: "buy milk", done: false });
  // The README's quick start, as written: a record's id goes straight back in.
  await todos.update(t.id, { done: true });
  await todos.replace(t.id, { title: "buy oat milk" });
  const id = t.id;
  const one: FerryRecord | undefined = await todos.get(id);
  const list: FerryRecord[] = await todos.all();
  const open: FerryRecord[] = await todos.query({ where: { done: false }, orderBy: "title", limit: 20 });
  await todos.delete(id);
  const many: FerryRecord[] = await todos.createMany([{ title: "a" }, { title: "b" }]);
  const maybe: string | undefined = Math.random() > 0.5 ? "note" : undefined;
  await todos.create({ title: "c", note: maybe }); // an undefined field is left out
  // A collection typed with the app's interface: records come back as `Todo`, writes take its fields.
  const typed: Collection<Todo> = db.collection<Todo>("todos");
  const made: Todo = await typed.create({ title: "typed", meta: { pinned: true } });
  const title: string = made.title;
  const pinned: boolean | undefined = (await typed.get(made.id))?.meta?.pinned;
  const typedAll: Todo[] = await typed.query({ where: { "meta.pinned": true } });
  await typed.update(made.id, { done: true, meta: undefined });
  typed.subscribe((c) => console.log(c.record?.title.toUpperCase()));
  // @ts-expect-error `done` is a boolean in Todo
  await typed.update(made.id, { done: "yes" });
  // @ts-expect-error Todo has no field `nope`
  await typed.create({ title: "x", nope: 1 });
  console.log(title, pinned, typedAll.length);
  const off: () => void = todos.subscribe((change: Change) => console.log(change.type, change.id, change.record));
  off();
  const pending: number = await db.pendingCount();
  const outbox: OutboxEntry[] = await db.outbox();
  const kinds: ("create" | "update" | "delete")[] = outbox.map((e) => e.kind);
  for (const e of outbox) if (e.attempts > 4) await db.rejectPending(e.mutationId);
  const status: SyncStatus = await db.status();
  const rejected: RejectedMutation[] = await db.rejected();
  for (const r of rejected) {
    const putBack: FerryRecord | undefined = r.restored;
    await db.retryRejected(r.mutationId, putBack ? { title: "fixed" } : undefined);
    await db.retryRejected(r.mutationId);
  }
  // @ts-expect-error a fix is an object of fields
  await db.retryRejected("m", 3);
  db.on("idChange", (e: IdChange) => console.log(e.from, e.to));
  db.on("change", (e) => console.log(e.type, e.record?.id));
  // @ts-expect-error a change has no field `nope`
  db.on("change", (e) => console.log(e.nope));
  await db.sync().catch((e: Error) => console.log(e.name));
  await todos.pull();
  await todos.pull({ full: true });
  try {
    await db.sync();
  } catch (e) {
    const err = e as FerryError;
    if (err.name === "NetworkError" && err.status === 503) console.log("busy");
    // @ts-expect-error not an error name Ferry uses
    if (err.name === "NetwrokError") console.log("never");
  }
  await todos.pull();
  const open_conflicts: OpenConflict[] = await db.conflicts();
  for (const c of open_conflicts) {
    if (c.state === "deferred") await db.resolveConflict(c.conflictId, c.server);
    else await db.discardConflict(c.conflictId);
  }
  db.setOffline(true);
  const leads: boolean = (await db.status()).leader;
  console.log(leads);
  console.log(one, list, open, many, pending, kinds, status.online, rejected.length);
  db.close();

  // @ts-expect-error a collection needs a url
  await Ferry.open({ name: "x", collections: { a: {} } });
  // @ts-expect-error records are JSON objects
  await todos.create("not a record");
  // @ts-expect-error unknown event
  db.on("nope", () => {});
  // @ts-expect-error a resolver answers a record, null or "defer"
  await Ferry.open({ name: "y", collections: {}, resolveConflict: () => 42 });
}
