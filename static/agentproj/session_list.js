// Keeps the session list current: the server sends a session's row re-rendered (new, status,
// title) or says it is gone; this places, replaces or removes the row by id. Renaming, deleting and searching
// are plain forms and links, and work without this script.

import { csrfToken } from "./http.js";
import { CLOSE_CODES } from "./vocabulary.js";

const RECONNECT_MS = 2000;

// A row the list does not show yet is a new session: it goes first, as the list is newest
// first, unless the list shows the results of a search or a later page.
function placeRow(sessionId, html) {
  const list = document.getElementById("sessions");
  const row = document.getElementById(`session-${sessionId}`);
  if (!row && (list.dataset.query || list.dataset.page !== "1")) return;
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  const fresh = template.content.firstElementChild;
  // Rendered for the socket, the row's forms carry no CSRF token: they get this page's.
  for (const input of fresh.querySelectorAll("input[name=csrfmiddlewaretoken]")) {
    input.value = csrfToken();
  }
  if (!row) {
    list.querySelector(":scope > li.empty")?.remove();
    list.prepend(fresh);
    return;
  }
  // A rename form the user has open stays open.
  const open = row.querySelector("details[open]");
  if (open) fresh.querySelector("details").open = true;
  row.replaceWith(fresh);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sessions/`);
  socket.addEventListener("message", (e) => {
    let message;
    try {
      message = JSON.parse(e.data);
    } catch {
      return;
    }
    if (message.type === "row") placeRow(message.session, message.html);
    else if (message.type === "removed") {
      document.getElementById(`session-${message.session}`)?.remove();
    }
  });
  socket.addEventListener("close", (event) => {
    if (event.code !== CLOSE_CODES.LOGIN_ENDED) setTimeout(connect, RECONNECT_MS);
  });
}

if (document.getElementById("sessions")) connect();
