// Keeps the admin approval queue live: the server says "changed" over /ws/approvals/ whenever a
// request is created, decided, cancelled or expired, and the list is fetched again and swapped
// in. While the approver has rows selected or an action chosen the swap waits, so a click never
// lands on a row that moved under the pointer.

import { CLOSE_CODES } from "./vocabulary.js";

const MAX_BACKOFF_MS = 30000;
const RETRY_AFTER_FAILURE_MS = 3000;

const status = document.getElementById("approval-queue-live");
let stale = false;
let refreshing = false;
let attempts = 0;
let everConnected = false;

function setStatus(state, text) {
  if (status) {
    status.dataset.state = state;
    status.textContent = text;
  }
}

function busy() {
  const form = document.getElementById("changelist-form");
  if (!form) return false;
  const action = form.querySelector("select[name=action]");
  return (
    form.querySelector("input.action-select:checked") !== null ||
    (action !== null && action.value !== "")
  );
}

function restoreFilterState(nav) {
  // Django's filters.js remembers which filter groups are collapsed; keep honouring it.
  let saved = {};
  try {
    saved = JSON.parse(sessionStorage.getItem("django.admin.filtersState")) || {};
  } catch {
    saved = {};
  }
  nav.querySelectorAll("details[data-filter-title]").forEach((detail) => {
    const key = detail.dataset.filterTitle;
    if (key in saved) detail.open = Boolean(saved[key]);
    detail.addEventListener("toggle", () => {
      saved[key] = detail.open;
      sessionStorage.setItem("django.admin.filtersState", JSON.stringify(saved));
    });
  });
}

function swap(fresh) {
  const form = document.getElementById("changelist-form");
  const freshForm = fresh.getElementById("changelist-form");
  if (!form || !freshForm) return false;
  form.innerHTML = freshForm.innerHTML;
  const nav = document.getElementById("changelist-filter");
  const freshNav = fresh.getElementById("changelist-filter");
  if (nav && freshNav) {
    nav.innerHTML = freshNav.innerHTML;
    restoreFilterState(nav);
  }
  const checkboxes = document.querySelectorAll("tr input.action-select");
  if (checkboxes.length > 0 && typeof window.Actions === "function") {
    window.Actions(checkboxes);
  }
  return true;
}

async function refresh() {
  if (busy()) {
    stale = true;
    setStatus("stale", "Live: the queue changed; it refreshes when nothing is selected");
    return;
  }
  if (refreshing) {
    stale = true;
    return;
  }
  refreshing = true;
  stale = false;
  let failed = false;
  try {
    const response = await fetch(window.location.href, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (!response.ok || response.redirected) {
      // Logged out, or the page moved: a full load shows the approver what happened.
      window.location.reload();
      return;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    if (!busy() && swap(fresh)) {
      setStatus("live", "Live");
    } else {
      stale = true;
      failed = !busy();
    }
  } catch {
    stale = true;
    failed = true;
  } finally {
    refreshing = false;
  }
  if (stale && !busy()) {
    // A change announced meanwhile is fetched at once; after a failure, wait before retrying
    // so that a server that is down is not asked again in a tight loop.
    window.setTimeout(refresh, failed ? RETRY_AFTER_FAILURE_MS : 0);
  }
}

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/approvals/`);
  socket.addEventListener("open", () => {
    attempts = 0;
    setStatus("live", "Live");
    // Changes made while the socket was down were never announced.
    if (everConnected) refresh();
    everConnected = true;
  });
  socket.addEventListener("message", (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "changed") refresh();
  });
  socket.addEventListener("close", (event) => {
    // The consumer closes with NOT_ALLOWED for users who may not decide.
    if (event.code === CLOSE_CODES.NOT_ALLOWED) {
      setStatus("off", "Live updates are not available for this account");
      return;
    }
    if (event.code === CLOSE_CODES.LOGIN_ENDED) {
      setStatus("off", "Live updates stopped: you are logged out");
      return;
    }
    const delay = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempts) * (0.5 + Math.random() / 2);
    attempts += 1;
    setStatus("offline", "Live: reconnecting…");
    window.setTimeout(connect, delay);
  });
}

// A deferred refresh runs as soon as the approver clears the selection and the action.
document.addEventListener("change", () => {
  if (stale && !busy()) refresh();
});

connect();
