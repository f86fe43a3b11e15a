// Keeps the user's sessions current wherever a page lists them: the session list (#sessions)
// and the chat page's sidebar (#sidebar-sessions), over one socket. The server sends a session
// re-rendered when it is created or its status or title changes (the list's row as `html`, the
// sidebar's item as `item`), or says it is gone; this places, replaces or removes it by id.
// Both lists are in order of last activity (each entry's data-activity), so a session whose
// turn starts moves to the top. Renaming, deleting, searching and starting a session are plain
// forms and links, and work without this script.

import { csrfToken } from "./http.js";
import { CLOSE_CODES } from "./vocabulary.js";

const RECONNECT_MS = 2000;

function parse(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function activityOf(node) {
  return Date.parse(node.dataset.activity) || 0;
}

// Puts `fresh` where its last activity belongs, in place of the entry it renews (`old`). A
// session the list did not show goes in only where the list shows its time: not below the
// last entry while more sessions follow (data-more: a later page, beyond the sidebar's limit).
function placeByActivity(list, old, fresh) {
  const activity = activityOf(fresh);
  old?.remove();
  const later = [...list.children].find(
    (child) => child.dataset.activity && activityOf(child) < activity,
  );
  if (later) list.insertBefore(fresh, later);
  else if (old || !("more" in list.dataset)) list.append(fresh);
  else return;
  const limit = Number(list.dataset.limit);
  const entries = list.querySelectorAll(":scope > [data-session]");
  if (limit && entries.length > limit) {
    entries[entries.length - 1].remove();
    list.dataset.more = "";
  }
  list.dispatchEvent(new CustomEvent("sessions:placed", { detail: { entry: fresh } }));
}

// The list page: only its first page, unsearched, takes sessions it did not show.
function placeRow(list, sessionId, html) {
  const row = document.getElementById(`session-${sessionId}`);
  if (!row && (list.dataset.query || list.dataset.page !== "1")) return;
  const fresh = parse(html);
  // Rendered for the socket, the row's forms carry no CSRF token: they get this page's.
  for (const input of fresh.querySelectorAll("input[name=csrfmiddlewaretoken]")) {
    input.value = csrfToken();
  }
  // A rename form the user has open stays open.
  if (row?.querySelector("details[open]")) fresh.querySelector("details").open = true;
  list.querySelector(":scope > li.empty")?.remove();
  if (list.dataset.query || list.dataset.page !== "1") row.replaceWith(fresh);
  else placeByActivity(list, row, fresh);
}

// The sidebar: rendered for the socket, an item does not know which page it lands in.
function placeItem(list, sessionId, html) {
  const item = document.getElementById(`sidebar-session-${sessionId}`);
  const fresh = parse(html);
  const link = fresh.querySelector("a");
  const focused = item?.contains(document.activeElement);
  if (sessionId === list.dataset.current) link.setAttribute("aria-current", "page");
  placeByActivity(list, item, fresh);
  if (focused && fresh.isConnected) link.focus();
}

function connect(list, sidebar) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sessions/`);
  socket.addEventListener("message", (e) => {
    let message;
    try {
      message = JSON.parse(e.data);
    } catch {
      return;
    }
    if (message.type === "row") {
      if (list) placeRow(list, message.session, message.html);
      if (sidebar) placeItem(sidebar, message.session, message.item);
    } else if (message.type === "removed") {
      document.getElementById(`session-${message.session}`)?.remove();
      document.getElementById(`sidebar-session-${message.session}`)?.remove();
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code === CLOSE_CODES.LOGIN_ENDED) return;
    setTimeout(() => connect(list, sidebar), RECONNECT_MS);
  });
}

const list = document.getElementById("sessions");
const sidebar = document.getElementById("sidebar-sessions");
if (list || sidebar) connect(list, sidebar);
