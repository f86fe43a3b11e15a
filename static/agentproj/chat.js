// The live chat page. It draws only what the session's timeline holds: every event is keyed by
// its seq, so a replay, a reconnect or a second delivery updates an item instead of adding one.

const ACTIVE = new Set(["queued", "running", "waiting_for_approval", "stopping"]);
const STOPPABLE = new Set(["queued", "running", "waiting_for_approval"]);
const TERMINAL = new Set(["completed", "stopped", "failed"]);
const STATUS_LABELS = {
  pending: "Waiting in line",
  queued: "Queued",
  running: "Running",
  waiting_for_approval: "Waiting for approval",
  stopping: "Stopping…",
  completed: "Completed",
  stopped: "Stopped",
  failed: "Failed",
};
const ERROR_MESSAGES = {
  session_busy: "A turn is still active. Use “Stop and send” or “Queue”.",
  no_active_turn: "There is nothing to stop.",
  not_pending: "This request was already decided, cancelled or expired.",
  not_found: "This no longer exists.",
  not_authenticated: "Your login has expired. Reload the page to log in again.",
  authentication_failed: "Your login has expired. Reload the page to log in again.",
  permission_denied: "You are not allowed to do that.",
  throttled: "Too many requests. Wait a moment and try again.",
  login_ended: "You are logged out. Reload the page to log in again.",
};
// The consumer closes with this when the login ends (logged out, expired): reconnecting cannot help.
const LOGIN_ENDED = 4401;
const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10000;
const NEAR_BOTTOM_PX = 120;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

const COPY_LABEL = "Copy";
const COPY_LABEL_MS = 2000;

function addCopyButton(pre) {
  const button = el("button", { type: "button", class: "copy-code", "aria-label": "Copy code" },
    COPY_LABEL);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(pre.textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(() => { button.textContent = COPY_LABEL; }, COPY_LABEL_MS);
  });
  const block = el("div", { class: "code-block" });
  pre.replaceWith(block);
  block.append(button, pre);
}

function csrfToken() {
  const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function postJSON(url, body) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": csrfToken(),
      },
      body: JSON.stringify(body),
    });
  } catch {
    return { ok: false, status: 0, data: null };
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  return { ok: response.ok, status: response.status, data };
}

function readableError(result) {
  if (result.status === 0) return "Could not reach the server. Check your connection and try again.";
  const code = result.data && result.data.code;
  if (code === "invalid") {
    const fields = (result.data && result.data.fields) || {};
    if (fields.message) return "The message is empty, too long or has characters that are not allowed.";
    return "The request is not valid.";
  }
  if (code && ERROR_MESSAGES[code]) return ERROR_MESSAGES[code];
  if (result.data && typeof result.data.detail === "string") return result.data.detail;
  if (result.status === 403) return "The request was refused. Reload the page and try again.";
  return `The request failed (HTTP ${result.status}). Try again.`;
}

function pretty(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value, null, 2);
}

function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// How a grant's match reads, the same as the page's server-rendered grant list: "" matches any
// call, else `to is "x@example.com"` for each field, in name order.
function matchConditions(match) {
  return Object.keys(match || {})
    .sort()
    .map((name) => `${name} is ${JSON.stringify(match[name])}`)
    .join(" and ");
}

// Minutes in UTC, as the server renders times (its TIME_ZONE is UTC).
function timeElement(iso) {
  const text = iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") : "";
  return el("time", { datetime: iso || null }, text);
}

function insertBySeq(list, node) {
  const seq = Number(node.dataset.seq);
  for (const child of list.children) {
    if (Number(child.dataset.seq) > seq) {
      list.insertBefore(node, child);
      return;
    }
  }
  list.append(node);
}

// The session's grants ("approve for this session"). The server renders the list; the events
// that make and revoke grants keep it current, building rows like the server's.
class GrantList {
  constructor(section) {
    this.section = section;
    this.list = section.querySelector(".grant-list");
    this.error = section.querySelector(".grant-error");
    this.revokeUrl = section.dataset.revokeUrl;
    this.canRevoke = section.dataset.canRevoke === "1";
    for (const row of this.list.children) this.wire(row);
  }

  row(id) {
    return this.list.querySelector(`[data-grant="${id}"]`);
  }

  add({ id, tool, match, grantedBy, at }) {
    if (this.row(id)) return;
    const conditions = matchConditions(match);
    const row = el(
      "li",
      { class: "grant", "data-grant": id, "data-state": "active" },
      el("code", { class: "grant-tool" }, tool),
      el("span", { class: "grant-match" }, conditions ? `when ${conditions}` : "every call"),
      el("span", { class: "grant-made" }, `granted by ${grantedBy}, `, timeElement(at)),
      el("span", { class: "grant-state" }, "Active"),
      this.canRevoke ? el("button", { type: "button", class: "revoke" }, "Revoke") : null,
    );
    this.list.append(row);
    this.wire(row);
    this.section.hidden = false;
  }

  markRevoked(id, revokedBy, at) {
    const row = this.row(id);
    if (!row || row.dataset.state === "revoked") return;
    row.dataset.state = "revoked";
    row.querySelector(".grant-state").replaceChildren(`Revoked by ${revokedBy}, `, timeElement(at));
    const button = row.querySelector("button.revoke");
    if (button) button.remove();
  }

  wire(row) {
    const button = row.querySelector("button.revoke");
    if (button) button.addEventListener("click", () => this.revoke(row, button));
  }

  async revoke(row, button) {
    button.disabled = true;
    const url = this.revokeUrl.replace("/grants/0/", `/grants/${row.dataset.grant}/`);
    const result = await postJSON(url, {});
    if (result.ok) {
      // The answer is enough to show it: the revocation's event may come later, or from a
      // replay, and changes nothing more.
      this.markRevoked(result.data.id, result.data.revoked_by, result.data.revoked_at);
      this.showError("");
    } else {
      button.disabled = false;
      this.showError(readableError(result));
    }
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }
}

class ChatPage {
  constructor(root) {
    this.root = root;
    this.sessionId = root.dataset.session;
    this.canDecide = root.dataset.canDecide === "1";
    this.urls = {
      turns: root.dataset.turnsUrl,
      cancel: root.dataset.cancelUrl,
      approve: root.dataset.approveUrl,
      reject: root.dataset.rejectUrl,
    };
    this.timeline = root.querySelector("#timeline");
    this.empty = root.querySelector("#empty");
    this.connection = root.querySelector("#connection");
    this.form = root.querySelector("#composer");
    this.message = root.querySelector("#message");
    this.notice = root.querySelector("#notice");
    this.grants = new GrantList(root.querySelector("#grants"));
    this.buttons = {
      send: root.querySelector("#send"),
      interrupt: root.querySelector("#send-interrupt"),
      queue: root.querySelector("#send-queue"),
      stop: root.querySelector("#stop"),
    };

    this.items = new Map(); // seq -> rendered item
    this.turns = new Map(); // turn id -> turn state
    this.approvals = new Map(); // approval id -> approval item
    this.toolCalls = new Map(); // tool call id -> tool_call item
    this.decisions = new Map(); // approval id -> approval_decided data
    this.lastSeq = 0;
    this.stopRequestedFor = null;
    this.sending = false;
    this.socket = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.leaving = false;

    // The server's view of the active turn, so Stop works before the first replay arrives.
    if (root.dataset.activeTurn) {
      this.turnState(Number(root.dataset.activeTurn)).status = root.dataset.turnStatus;
    }
  }

  start() {
    this.form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.send(this.activeTurn() ? "enqueue" : "reject");
    });
    this.message.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.buttons.interrupt.addEventListener("click", () => this.send("interrupt"));
    this.buttons.queue.addEventListener("click", () => this.send("enqueue"));
    this.buttons.stop.addEventListener("click", () => this.stop());
    // Leaving the page only stops watching; the turn belongs to the worker.
    window.addEventListener("pagehide", () => {
      this.leaving = true;
      if (this.socket) this.socket.close();
    });
    // A page restored from the back/forward cache picks up where it left off.
    window.addEventListener("pageshow", (e) => {
      if (!e.persisted) return;
      this.leaving = false;
      this.socket = null;
      this.connect();
    });
    this.updateControls();
    this.connect();
  }

  // Websocket

  connect() {
    this.reconnectTimer = null;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/sessions/${this.sessionId}/`);
    this.socket = socket;
    this.setConnection(this.attempt ? "reconnecting" : "connecting");
    socket.addEventListener("open", () => {
      socket.send(JSON.stringify({ type: "resume", after_seq: this.resumeFrom() }));
    });
    socket.addEventListener("message", (e) => {
      if (socket !== this.socket) return;
      let message;
      try {
        message = JSON.parse(e.data);
      } catch {
        return;
      }
      if (message.type === "event") this.onEvent(message.event);
      else if (message.type === "delta") this.onDelta(message.delta);
      else if (message.type === "replayed") {
        this.attempt = 0;
        this.setConnection("live");
      }
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket || this.leaving) return;
      this.socket = null;
      if (event.code === LOGIN_ENDED) {
        this.setConnection("ended");
        this.showNotice(ERROR_MESSAGES.login_ended);
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.reconnectTimer) return;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.setConnection("reconnecting");
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  // An assistant message still streaming may have been updated in place while the socket was
  // down; resuming just before it replays its latest text along with everything after it.
  resumeFrom() {
    let from = this.lastSeq;
    for (const item of this.items.values()) {
      if (item.kind === "assistant_message" && item.data.streaming) {
        from = Math.min(from, item.seq - 1);
      }
    }
    return from;
  }

  setConnection(state) {
    const labels = {
      connecting: "Connecting…",
      reconnecting: "Reconnecting…",
      live: "Live",
      ended: "Logged out",
    };
    this.connection.dataset.state = state;
    this.connection.textContent = labels[state];
  }

  // Events

  onEvent(event) {
    const known = this.items.get(event.seq);
    if (known) {
      if (known.kind === "assistant_message") {
        this.updateAssistant(known, event.data || {}, event.html);
      }
      return;
    }
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    const stick = this.nearBottom();
    const item = {
      seq: event.seq,
      kind: event.kind,
      turnId: event.turn,
      data: event.data || {},
      html: event.html,
      at: event.created_at,
    };
    this.items.set(event.seq, item);
    const turn = event.turn === null || event.turn === undefined ? null : this.turnFor(event);
    const render = {
      user_message: () => this.renderUserMessage(item),
      assistant_message: () => this.renderAssistant(item),
      tool_call: () => this.renderToolCall(item),
      tool_result: () => this.renderToolResult(item),
      tool_progress: () => this.renderToolProgress(item),
      approval_requested: () => this.renderApproval(item),
      approval_decided: () => this.renderDecision(item),
      approval_grant_revoked: () => this.renderGrantRevoked(item),
      interrupt: () => this.renderInterrupt(item),
      context_trimmed: () => this.renderContextTrimmed(item),
      error: () => this.renderError(item, turn),
      status: () => this.applyStatus(item, turn),
    }[event.kind];
    if (render) render();
    if (item.el) {
      item.el.dataset.seq = String(item.seq);
      item.el.dataset.kind = item.kind;
      insertBySeq(turn ? turn.list : this.timeline, item.el);
    }
    this.empty.hidden = this.items.size > 0;
    if (stick) this.scrollToEnd();
  }

  onDelta(delta) {
    const item = this.items.get(delta.seq);
    if (!item || item.kind !== "assistant_message" || !item.data.streaming) return;
    // A delta that does not start where the text ends is stale or early: the next checkpoint
    // replaces the text wholesale anyway.
    if (delta.offset !== item.text.length) return;
    const stick = this.nearBottom();
    item.text += delta.text;
    item.body.textContent = item.text;
    if (stick) this.scrollToEnd();
  }

  // Turns

  turnState(id) {
    let turn = this.turns.get(id);
    if (!turn) {
      turn = { id, parent: null, status: null, statusSeq: 0, stopReason: "", errorText: "" };
      this.turns.set(id, turn);
    }
    return turn;
  }

  turnFor(event) {
    const turn = this.turnState(event.turn);
    if (event.kind === "status" && event.data && event.data.parent) {
      turn.parent = event.data.parent;
    }
    if (!turn.el) this.renderTurn(turn, event.seq);
    return turn;
  }

  renderTurn(turn, seq) {
    turn.list = el("ol", { class: "turn-events" });
    turn.chip = el("span", { class: "chip" });
    turn.el = el(
      "li",
      { class: turn.parent ? "turn child" : "turn", "data-turn": turn.id, "data-seq": seq },
      turn.parent ? el("div", { class: "turn-head" }, "Sub-agent") : null,
      turn.list,
      el("div", { class: "turn-foot" }, turn.chip),
    );
    const parent = turn.parent ? this.turns.get(turn.parent) : null;
    insertBySeq(parent && parent.list ? parent.list : this.timeline, turn.el);
    this.renderChip(turn);
  }

  applyStatus(item, turn) {
    if (!turn || item.seq < turn.statusSeq) return;
    turn.statusSeq = item.seq;
    turn.status = item.data.status;
    turn.stopReason = item.data.stop_reason || "";
    if (item.data.task && turn.el && turn.parent) {
      turn.el.querySelector(".turn-head").textContent = `Sub-agent: ${item.data.task}`;
    }
    if (TERMINAL.has(turn.status) && this.stopRequestedFor === turn.id) {
      this.stopRequestedFor = null;
    }
    this.renderChip(turn);
    for (const approval of this.approvals.values()) {
      if (approval.turnId === turn.id) this.renderApprovalState(approval);
    }
    this.updateControls();
  }

  renderChip(turn) {
    if (!turn.chip) return;
    const status = turn.status || "queued";
    turn.chip.className = `chip chip-${status}`;
    turn.chip.dataset.status = status;
    turn.chip.title = status === "stopped" ? turn.stopReason.replaceAll("_", " ") : "";
    if (status === "stopped") {
      turn.chip.replaceChildren(el("span", { class: "stop-icon", "aria-hidden": "true" }), "Stopped");
    } else if (status === "failed") {
      turn.chip.replaceChildren(turn.errorText ? `Failed: ${turn.errorText}` : "Failed");
    } else {
      turn.chip.replaceChildren(STATUS_LABELS[status] || status);
    }
  }

  activeTurn() {
    for (const turn of this.turns.values()) {
      if (!turn.parent && ACTIVE.has(turn.status)) return turn;
    }
    return null;
  }

  // Items

  renderUserMessage(item) {
    item.el = el("li", { class: "msg user" }, el("div", { class: "bubble" }, item.data.text || ""));
  }

  renderAssistant(item) {
    item.body = el("div", { class: "bubble" });
    item.el = el("li", { class: "msg assistant" }, item.body);
    this.updateAssistant(item, item.data, item.html, true);
  }

  // While the message streams the bubble shows its raw text, which deltas append to; once it
  // ends, the server's sanitised HTML of the stored text replaces the bubble's content.
  updateAssistant(item, data, html, first = false) {
    // The final text wins over a checkpoint broadcast that arrives after it.
    if (!first && item.data.streaming === false && data.streaming) return;
    // A checkpoint is written while the stream goes on, so its broadcast can arrive after
    // deltas that already carried more: it never takes text back.
    const checkpoint = data.text || "";
    if (!first && data.streaming && item.text.length > checkpoint.length &&
        item.text.startsWith(checkpoint)) return;
    item.data = data;
    item.text = data.text || "";
    item.el.classList.toggle("streaming", Boolean(data.streaming));
    if (data.streaming || html === undefined) {
      item.html = undefined;
      item.body.classList.remove("rendered");
      item.body.textContent = item.text;
      return;
    }
    // A replay of the same final message leaves the bubble (and a selection in it) alone.
    if (!first && item.html === html) return;
    item.html = html;
    item.body.classList.add("rendered");
    item.body.innerHTML = html;
    for (const pre of item.body.querySelectorAll("pre")) addCopyButton(pre);
  }

  renderToolCall(item) {
    if (item.data.tool_call_id) this.toolCalls.set(item.data.tool_call_id, item);
    item.el = el(
      "li",
      { class: "tool call" },
      el("div", { class: "tool-head" }, "Tool call ", el("code", {}, item.data.tool || "")),
      el("pre", {}, pretty(item.data.arguments)),
    );
  }

  renderToolResult(item) {
    const ok = item.data.ok !== false;
    item.el = el(
      "li",
      { class: ok ? "tool result" : "tool result failed" },
      el(
        "div",
        { class: "tool-head" },
        ok ? "Result of " : "Failed: ",
        el("code", {}, item.data.tool || ""),
      ),
      el("pre", {}, pretty(item.data.result)),
    );
  }

  // A server may report progress many times: its call shows the latest, in place.
  renderToolProgress(item) {
    const { progress, total, message } = item.data;
    let text = `Progress ${progress}`;
    if (total) text += ` of ${total}`;
    if (message) text += `: ${message}`;
    const call = this.toolCalls.get(item.data.tool_call_id);
    if (!call || !call.el) {
      item.el = el("li", { class: "tool progress" }, el("p", { class: "tool-progress" }, text));
      return;
    }
    if (call.progressSeq && call.progressSeq > item.seq) return;
    if (!call.progress) {
      call.progress = el("p", { class: "tool-progress" });
      call.el.append(call.progress);
    }
    call.progressSeq = item.seq;
    call.progress.textContent = text;
  }

  renderApproval(item) {
    item.approvalId = item.data.approval;
    // The arguments as they stand: the requested ones until an approver of a quorum edits them.
    item.current = item.data.arguments || {};
    item.state = el("p", { class: "approval-state" });
    // Only those who may decide get the controls; for the others the card is a record.
    item.actions = this.canDecide ? this.renderDecisionControls(item) : null;
    item.el = el(
      "li",
      { class: "approval", "data-approval": item.approvalId },
      el("div", { class: "tool-head" }, "Approval needed for ", el("code", {}, item.data.tool || "")),
      el("pre", { class: "requested-arguments" }, pretty(item.data.arguments)),
      item.state,
      item.actions,
    );
    this.approvals.set(item.approvalId, item);
    // The approval card shows the arguments; the call it belongs to need not repeat them.
    const call = this.toolCalls.get(item.data.tool_call_id);
    if (call && call.el) call.el.classList.add("has-approval");
    this.renderApprovalState(item);
  }

  renderDecisionControls(item) {
    item.editToggle = el(
      "button",
      { type: "button", class: "edit-arguments", "aria-expanded": "false" },
      "Edit arguments",
    );
    item.editToggle.addEventListener("click", () => this.toggleEditor(item));
    item.editor = el("textarea", {
      class: "arguments-editor",
      rows: Math.min(16, pretty(item.current).split("\n").length + 1),
      spellcheck: "false",
      "aria-label": "Arguments (JSON)",
      hidden: true,
    });
    item.reason = el("input", {
      type: "text",
      class: "reason",
      placeholder: "Reason (optional)",
      maxlength: 2000,
      "aria-label": "Reason",
    });
    item.approve = el("button", { type: "button", class: "approve" }, "Approve");
    item.reject = el("button", { type: "button", class: "reject" }, "Reject");
    item.approve.addEventListener("click", () => this.decide(item, "approve"));
    item.reject.addEventListener("click", () => this.decide(item, "reject"));
    item.error = el("p", { class: "approval-error", role: "alert", hidden: true });
    return el(
      "div",
      { class: "approval-actions" },
      el("div", { class: "approval-edit" }, item.editToggle, item.editor),
      this.renderGrantOptions(item),
      el("div", { class: "approval-buttons" }, item.reason, item.approve, item.reject),
      item.error,
    );
  }

  // "Approve for this session", optionally only for calls with the same values of chosen
  // fields. A grant lets later calls skip every approver, so a quorum's request offers none.
  renderGrantOptions(item) {
    item.grantFields = [];
    if ((item.data.approvals_needed || 1) > 1) return null;
    item.grant = el("input", { type: "checkbox", class: "approve-for-session" });
    const choices = Object.keys(item.current)
      .sort()
      .map((name) => {
        const box = el("input", { type: "checkbox", class: "grant-field", value: name });
        item.grantFields.push(box);
        return el("label", {}, box, " only when ", el("code", {}, name), " is the same");
      });
    const fields = el("div", { class: "grant-fields", hidden: true }, ...choices);
    item.grant.addEventListener("change", () => {
      fields.hidden = !item.grant.checked;
    });
    return el(
      "div",
      { class: "approval-grant" },
      el("label", {}, item.grant, " Approve for this session"),
      fields,
    );
  }

  toggleEditor(item) {
    const opening = item.editor.hidden;
    // Closing discards the edit: an approval then approves the arguments as they stand.
    item.editor.value = pretty(item.current);
    item.editor.hidden = !opening;
    item.editToggle.textContent = opening ? "Discard edit" : "Edit arguments";
    item.editToggle.setAttribute("aria-expanded", String(opening));
    this.showCardError(item, "");
    if (opening) item.editor.focus();
  }

  renderApprovalState(item) {
    const decision = this.decisions.get(item.approvalId);
    const turn = this.turns.get(item.turnId);
    let state = "pending";
    let text = "Waiting for approval";
    // A quorum's early approvals leave the request pending, and decidable by the others.
    const final = decision && decision.status !== "pending";
    if (decision && !final) {
      text = `Approved by ${decision.decided_by} (${decision.approvals_given} of ${decision.approvals_needed})`;
    } else if (decision) {
      state = decision.decision;
      text = `${decision.decision === "approved" ? "Approved" : "Rejected"} by ${decision.decided_by}`;
      if (decision.reason) text += `: ${decision.reason}`;
    } else if (turn && TERMINAL.has(turn.status)) {
      state = turn.stopReason === "approval_expired" ? "expired" : "cancelled";
      text = state === "expired" ? "Expired" : "Cancelled";
    }
    item.el.dataset.state = state;
    item.state.textContent = text;
    if (item.actions) {
      const decidable = !final && turn && turn.status === "waiting_for_approval";
      item.actions.hidden = !decidable;
    }
  }

  renderDecision(item) {
    const data = item.data;
    this.decisions.set(data.approval, data);
    const approved = data.decision === "approved";
    let text = `${approved ? "Approved" : "Rejected"} by ${data.decided_by}`;
    if (data.status === "pending") {
      text += ` (${data.approvals_given} of ${data.approvals_needed})`;
    }
    // A number names the grant that let this call through; an object is a grant being made.
    if (typeof data.grant === "number") text += " (approved for this session)";
    else if (data.grant) {
      const conditions = matchConditions(data.grant.match);
      text += `, and for the rest of this session${conditions ? ` when ${conditions}` : ""}`;
      this.grants.add({
        id: data.grant.id,
        tool: data.tool,
        match: data.grant.match,
        grantedBy: data.decided_by,
        at: item.at,
      });
    }
    if (data.reason) text += `: ${data.reason}`;
    // The card keeps the requested arguments; the decision shows what runs instead, and who
    // changed it.
    const edited = data.edited_arguments
      ? el(
          "div",
          { class: "edited" },
          `Arguments changed by ${data.edited_by}:`,
          el("pre", { class: "edited-arguments" }, pretty(data.edited_arguments)),
        )
      : null;
    item.el = el(
      "li",
      { class: `notice decision ${approved ? "approved" : "rejected"}` },
      el("span", { class: "decision-text" }, text),
      edited,
    );
    const approval = this.approvals.get(data.approval);
    if (!approval) return;
    // A quorum's later approvers edit from the arguments an earlier one changed.
    if (data.edited_arguments) approval.current = data.edited_arguments;
    this.renderApprovalState(approval);
  }

  renderGrantRevoked(item) {
    const { grant, tool, revoked_by: revokedBy } = item.data;
    const text = `Grant for ${tool} revoked by ${revokedBy}`;
    item.el = el("li", { class: "notice grant-revoked" }, text);
    this.grants.markRevoked(grant, revokedBy, item.at);
  }

  renderInterrupt(item) {
    item.el = el(
      "li",
      { class: "notice interrupt" },
      el("span", { class: "stop-icon", "aria-hidden": "true" }),
      item.data.text || "Stopped.",
    );
  }

  renderContextTrimmed(item) {
    item.el = el("li", { class: "notice trimmed" }, item.data.text || "");
  }

  renderError(item, turn) {
    const text = item.data.text || "Something went wrong while running this turn.";
    item.el = el("li", { class: "notice error" }, text);
    if (turn) {
      turn.errorText = text;
      this.renderChip(turn);
    }
  }

  // Actions

  async send(onBusy) {
    const text = this.message.value.trim();
    if (!text) {
      this.showNotice("Type a message first.");
      this.message.focus();
      return;
    }
    if (this.sending) return;
    this.sending = true;
    this.updateControls();
    const result = await postJSON(this.urls.turns, { message: text, on_busy: onBusy });
    this.sending = false;
    if (result.ok) {
      this.message.value = "";
      this.showNotice("");
    } else {
      this.showNotice(readableError(result));
    }
    this.updateControls();
  }

  async stop() {
    const turn = this.activeTurn();
    if (!turn || !STOPPABLE.has(turn.status) || this.stopRequestedFor === turn.id) return;
    this.stopRequestedFor = turn.id;
    this.updateControls();
    // Naming the turn makes a late click harmless: a turn that already ended answers 200.
    const result = await postJSON(this.urls.cancel, { turn: turn.id });
    if (!result.ok) {
      if (this.stopRequestedFor === turn.id) this.stopRequestedFor = null;
      if (result.data?.code !== "no_active_turn") this.showNotice(readableError(result));
      this.updateControls();
    }
  }

  async decide(item, action) {
    const { body, problem } =
      action === "approve"
        ? this.approvalBody(item)
        : { body: { reason: item.reason.value.trim() } };
    // A refusal stays on the card it is about; the request stays pending and editable.
    this.showCardError(item, problem || "");
    if (problem) return;
    item.approve.disabled = true;
    item.reject.disabled = true;
    const template = action === "approve" ? this.urls.approve : this.urls.reject;
    const url = template.replace("/0/", `/${item.approvalId}/`);
    const result = await postJSON(url, body);
    item.approve.disabled = false;
    item.reject.disabled = false;
    if (!result.ok) this.showCardError(item, readableError(result));
  }

  // An approval sends the edited arguments while the editor is open, and the grant if chosen.
  approvalBody(item) {
    const body = { reason: item.reason.value.trim() };
    if (!item.editor.hidden) {
      let edited;
      try {
        edited = JSON.parse(item.editor.value);
      } catch (error) {
        return { problem: `The arguments are not valid JSON: ${error.message}` };
      }
      if (!isPlainObject(edited)) {
        return { problem: "The arguments must be a JSON object: names and values in braces." };
      }
      body.arguments = edited;
    }
    if (item.grant && item.grant.checked) {
      const match = item.grantFields.filter((box) => box.checked).map((box) => box.value);
      body.grant = match.length ? { match } : true;
    }
    return { body };
  }

  showCardError(item, text) {
    item.error.textContent = text;
    item.error.hidden = !text;
  }

  updateControls() {
    const turn = this.activeTurn();
    const { send, interrupt, queue, stop } = this.buttons;
    send.hidden = Boolean(turn);
    interrupt.hidden = !turn;
    queue.hidden = !turn;
    for (const button of [send, interrupt, queue]) button.disabled = this.sending;

    const stopping =
      turn && (turn.status === "stopping" || this.stopRequestedFor === turn.id);
    stop.disabled = !turn || !STOPPABLE.has(turn.status) || Boolean(stopping);
    stop.classList.toggle("stopping", Boolean(stopping));
    stop.querySelector(".label").textContent = stopping ? "Stopping…" : "Stop";
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }

  nearBottom() {
    const doc = document.scrollingElement || document.documentElement;
    return doc.scrollHeight - doc.scrollTop - doc.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToEnd() {
    const doc = document.scrollingElement || document.documentElement;
    doc.scrollTop = doc.scrollHeight;
  }
}

const root = document.getElementById("chat");
if (root) new ChatPage(root).start();
