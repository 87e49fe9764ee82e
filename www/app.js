// The demo app: plain ES modules importing the npm package from /pkg (no bundler).
import init, { Ferry } from "/pkg/ferry.js";

const $ = (id) => document.getElementById(id);

await init();
const db = await Ferry.open({
  name: "ferry-demo",
  collections: { todos: { url: "/api/todos", indexes: ["done"] } },
  batchUrl: "/api/$batch",
});
const todos = db.collection("todos");

function item(t) {
  const li = document.createElement("li");
  const span = document.createElement("span");
  span.textContent = t.title; // text, never HTML: fields are user data
  const id = document.createElement("small");
  id.textContent = String(t.id).startsWith("tmp-") ? "not synced" : `#${t.id}`;
  const del = document.createElement("button");
  del.textContent = "Delete";
  del.onclick = () => todos.delete(t.id).catch(show);
  li.append(span, id, del);
  return li;
}

async function render() {
  const list = await todos.all();
  $("list").replaceChildren(...list.map(item));
  const s = await db.status();
  $("net").textContent = s.online ? "online" : "offline";
  $("net").className = "badge " + (s.online ? "online" : "offline");
  $("pending").textContent = `${s.pending} pending`;
}

function show(e) {
  $("error").textContent = `${e.name}: ${e.message}`;
}

$("add").onsubmit = async (ev) => {
  ev.preventDefault();
  const title = $("title").value.trim();
  if (!title) return;
  $("title").value = "";
  await todos.create({ title, done: false }).catch(show);
};

todos.subscribe(render);
db.on("status", render);
await render();
