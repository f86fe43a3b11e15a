// The chat page's header: the session's title kept live (set by the first message, or renamed
// here or elsewhere), Rename and Delete. The server renders the title; this only puts it in.
//
// It watches the session on a socket of its own, from the page's last event on, so that the
// timeline script stays unaware of it.

const LOGIN_ENDED = 4401;
const SESSION_GONE = 4404;
const RECONNECT_MS = 2000;

const head = document.getElementById("session-head");
const notice = document.getElementById("head-notice");

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function sendJSON(method, url, body) {
  try {
    const response = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, data };
  } catch {
    return { ok: false, status: 0, data: null };
  }
}

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

function applyTitle(message) {
  const template = document.createElement("template");
  template.innerHTML = message.html.trim();
  const fresh = template.content.firstElementChild;
  document.getElementById("session-title").replaceWith(fresh);
  document.title = `${fresh.textContent} · agentproj`;
  const input = document.getElementById("rename-title");
  if (document.activeElement !== input) input.value = message.title;
}

function sessionGone() {
  showNotice("This session was deleted.");
  const back = document.createElement("a");
  back.href = head.dataset.listUrl;
  back.textContent = " Back to your sessions";
  notice.append(back);
  for (const control of head.querySelectorAll("#rename, #delete")) control.hidden = true;
}

let lastSeq = Number(head.dataset.lastSeq) || 0;

function watch() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const sessionId = document.getElementById("chat").dataset.session;
  const socket = new WebSocket(`${scheme}://${location.host}/ws/sessions/${sessionId}/`);
  socket.addEventListener("open", () => {
    socket.send(JSON.stringify({ type: "resume", after_seq: lastSeq }));
  });
  socket.addEventListener("message", (e) => {
    let message;
    try {
      message = JSON.parse(e.data);
    } catch {
      return;
    }
    if (message.type === "event") lastSeq = Math.max(lastSeq, message.event.seq);
    else if (message.type === "session") applyTitle(message);
    else if (message.type === "session_deleted") sessionGone();
  });
  socket.addEventListener("close", (event) => {
    if (event.code === SESSION_GONE) sessionGone();
    else if (event.code !== LOGIN_ENDED) setTimeout(watch, RECONNECT_MS);
  });
}

document.getElementById("rename-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const title = document.getElementById("rename-title").value;
  const result = await sendJSON("PATCH", head.dataset.sessionUrl, { title });
  if (!result.ok) {
    showNotice(result.data?.fields?.title?.join(" ") || "The session could not be renamed.");
    return;
  }
  showNotice("");
  document.getElementById("rename").open = false;
});

const dialog = document.getElementById("delete-dialog");
document.getElementById("delete").addEventListener("click", (e) => {
  e.preventDefault();
  dialog.returnValue = "";
  dialog.showModal();
});
dialog.addEventListener("close", async () => {
  if (dialog.returnValue !== "delete") return;
  const result = await sendJSON("DELETE", head.dataset.sessionUrl);
  if (result.ok) location.assign(head.dataset.listUrl);
  else showNotice("The session could not be deleted.");
});

watch();
