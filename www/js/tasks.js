// The task list: create, tick, rename and delete. Rows are kept by record id and updated in place,
// so a refresh caused by sync never throws away a title being edited.
import { $, h, idLabel, isTemp } from "./dom.js";

export function tasksView({ todos, report }) {
  const list = $("tasks");
  const rows = new Map(); // String(id) -> <li>
  let editing = null; // String(id) of the row being renamed

  $("add").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("new-title");
    const title = input.value.trim();
    if (!title) return;
    input.value = "";
    // `created` keeps the list in creation order whatever ids the server hands out.
    todos.create({ title, done: false, created: Date.now() }).catch(report);
  });

  function startEdit(id) {
    editing = id;
    const li = rows.get(id);
    if (!li) return;
    const title = li.querySelector(".title").textContent;
    const input = h("input", { class: "rename", value: title, "aria-label": "Task title", maxLength: 500 });
    const save = () => {
      const value = input.value.trim();
      editing = null;
      if (value && value !== title) todos.update(li.dataset.id, { title: value }).catch(report);
      fill(li, li.record, li.pending);
    };
    const cancel = () => {
      editing = null;
      fill(li, li.record, li.pending);
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") save();
      if (ev.key === "Escape") cancel();
    });
    li.querySelector(".main").replaceChildren(input);
    li.querySelector(".actions").replaceChildren(
      h("button", { type: "button", class: "primary", onclick: save }, "Save"),
      h("button", { type: "button", onclick: cancel }, "Cancel"),
    );
    input.focus();
    input.select();
  }

  function fill(li, record, pending) {
    li.record = record;
    li.pending = pending;
    const id = String(record.id);
    li.dataset.id = id;
    li.classList.toggle("done", record.done === true);
    li.classList.toggle("pending", pending);
    const box = li.querySelector("input[type=checkbox]");
    box.checked = record.done === true;
    if (editing === id) return;
    const meta = [idLabel(record.id)];
    if (record.version != null) meta.push(`v${record.version}`);
    li.querySelector(".main").replaceChildren(
      h("span", { class: "title" }, String(record.title ?? "")),
      h("small", { class: "meta" }, meta.join(" · "),
        pending ? h("span", { class: "tag wait" }, isTemp(record.id) ? "not on the server yet" : "change not sent") : null),
    );
    li.querySelector(".actions").replaceChildren(
      h("button", { type: "button", onclick: () => startEdit(li.dataset.id) }, "Edit"),
      h("button", { type: "button", class: "danger", onclick: () => todos.delete(li.dataset.id).catch(report) }, "Delete"),
    );
  }

  function row(record) {
    const li = h("li", { class: "task" },
      h("input", {
        type: "checkbox",
        "aria-label": "Done",
        onchange: (ev) => todos.update(li.dataset.id, { done: ev.target.checked }).catch(report),
      }),
      h("div", { class: "main" }),
      h("div", { class: "actions" }),
    );
    return li;
  }

  return {
    /** Shows `records`; `pendingIds` are the ids with a change in the outbox. */
    render(records, pendingIds) {
      const seen = new Set();
      records.forEach((record, i) => {
        const id = String(record.id);
        seen.add(id);
        let li = rows.get(id);
        if (!li) rows.set(id, (li = row(record)));
        fill(li, record, pendingIds.has(id));
        // Move only what is out of place: moving a row would blur a title being edited.
        if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
      });
      for (const [id, li] of rows) {
        if (!seen.has(id)) {
          li.remove();
          rows.delete(id);
          if (editing === id) editing = null;
        }
      }
      $("tasks-empty").hidden = records.length > 0;
    },
    /** A temporary id became the server's: the row (and an edit in progress) follows it. */
    renamed(from, to) {
      const li = rows.get(String(from));
      if (!li) return;
      rows.delete(String(from));
      rows.set(String(to), li);
      li.dataset.id = String(to);
      if (editing === String(from)) editing = String(to);
    },
  };
}
