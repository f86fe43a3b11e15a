// Keeps the approver inbox current over /ws/approvals/inbox/. The server sends the whole list
// as it stands for this approver (each card drawn through the chat page's partial) on connect
// and after every change, and what became of the requests that left it. This places new cards,
// redraws changed ones (keeping what the approver was typing), and marks the ones that left
// with their outcome in place of their form. Deciding is the cards' plain forms, posted
// without this script.

import { csrfToken } from "./http.js";
import { CLOSE_CODES } from "./vocabulary.js";

const RECONNECT_MS = 2000;
const LEFT_TEXT = "No longer waiting for you.";

const list = document.getElementById("inbox-list");
const empty = document.getElementById("inbox-empty");
const news = document.getElementById("inbox-news");
const connection = document.getElementById("inbox-connection");
// The HTML each listed card was last drawn from, by request id.
const drawn = new Map();

function parse(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function cardOf(id) {
  return document.getElementById(`inbox-${id}`);
}

function announce(text) {
  news.textContent = text;
}

function setCount(count) {
  const badge = document.getElementById("approvals-count");
  if (badge) badge.textContent = String(count);
}

// A card redrawn while the approver works in it keeps their reason, their edit, what they
// ticked and the focus.
function carryOver(old, fresh) {
  for (const field of old.querySelectorAll("input[name], textarea[name]")) {
    const twin = fresh.querySelector(
      field.type === "checkbox"
        ? `input[name="${field.name}"][value="${CSS.escape(field.value)}"]`
        : `[name="${field.name}"]`,
    );
    if (!twin) continue;
    if (field.type === "checkbox") twin.checked = field.checked;
    else if (field.name !== "csrfmiddlewaretoken") twin.value = field.value;
  }
  const details = old.querySelector("details[open]");
  if (details) fresh.querySelector("details")?.setAttribute("open", "");
}

function refocus(old, fresh) {
  const focused = old.contains(document.activeElement) ? document.activeElement : null;
  if (!focused) return;
  const selector = focused.name
    ? `[name="${focused.name}"]${focused.value && focused.tagName === "BUTTON" ? `[value="${focused.value}"]` : ""}`
    : focused.tagName.toLowerCase();
  fresh.querySelector(selector)?.focus();
}

function markLeft(card, text) {
  if (card.dataset.outcome) return;
  card.dataset.outcome = "left";
  card.querySelector(".approval-actions")?.remove();
  const line = document.createElement("p");
  line.className = "inbox-outcome";
  line.textContent = text;
  card.append(line);
}

function apply(message) {
  setCount(message.count);
  const told = new Map(message.left.map((left) => [String(left.id), left.text]));
  const listed = new Set(message.items.map((item) => String(item.id)));
  for (const card of list.querySelectorAll(":scope > .inbox-card:not([data-outcome])")) {
    const id = card.dataset.approval;
    if (listed.has(id)) continue;
    const text = told.get(id) || LEFT_TEXT;
    markLeft(card, text);
    drawn.delete(id);
    announce(text);
  }
  let previous = null;
  let added = 0;
  for (const item of message.items) {
    const id = String(item.id);
    let card = cardOf(id);
    if (!card || card.dataset.outcome || drawn.get(id) !== item.html) {
      const fresh = parse(item.html);
      for (const input of fresh.querySelectorAll("input[name=csrfmiddlewaretoken]")) {
        input.value = csrfToken();
      }
      if (card && !card.dataset.outcome) {
        if (drawn.has(id)) {
          carryOver(card, fresh);
        }
        card.replaceWith(fresh);
        refocus(card, fresh);
      } else {
        card?.remove();
        added += 1;
      }
      card = fresh;
      drawn.set(id, item.html);
    }
    const place = previous ? previous.nextElementSibling : list.firstElementChild;
    if (place !== card) list.insertBefore(card, place);
    previous = card;
  }
  if (added) announce(`${added} new request${added === 1 ? "" : "s"} waiting for you.`);
  empty.hidden = list.children.length > 0;
}

function setConnection(state, text) {
  connection.dataset.state = state;
  connection.textContent = text;
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/ws/approvals/inbox/`);
  socket.addEventListener("open", () => setConnection("live", "Live: changes show as they happen."));
  socket.addEventListener("message", (e) => {
    let message;
    try {
      message = JSON.parse(e.data);
    } catch {
      return;
    }
    if (message.type === "inbox") apply(message);
  });
  socket.addEventListener("close", (event) => {
    setConnection("offline", "Reconnecting…");
    if (event.code === CLOSE_CODES.LOGIN_ENDED || event.code === CLOSE_CODES.NOT_ALLOWED) {
      setConnection("offline", "Reload to see changes.");
      return;
    }
    setTimeout(connect, RECONNECT_MS);
  });
}

if (list) {
  // The cards drawn with the page count as drawn from the HTML the socket sends first: a card
  // the socket sends unchanged is kept as it is, with anything typed into it.
  for (const card of list.querySelectorAll(":scope > .inbox-card")) drawn.set(card.dataset.approval, null);
  connect();
}
