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
      if (known.kind === "assistant_message") this.updateAssistant(known, event.data || {});
      return;
    }
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    const stick = this.nearBottom();
    const item = { seq: event.seq, kind: event.kind, turnId: event.turn, data: event.data || {} };
    this.items.set(event.seq, item);
    const turn = event.turn === null || event.turn === undefined ? null : this.turnFor(event);
    const render = {
      user_message: () => this.renderUserMessage(item),
      assistant_message: () => this.renderAssistant(item),
      tool_call: () => this.renderToolCall(item),
      tool_result: () => this.renderToolResult(item),
      approval_requested: () => this.renderApproval(item),
      approval_decided: () => this.renderDecision(item),
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
    this.updateAssistant(item, item.data, true);
  }

  updateAssistant(item, data, first = false) {
    // The final text wins over a checkpoint broadcast that arrives after it.
    if (!first && item.data.streaming === false && data.streaming) return;
    // A checkpoint is written while the stream goes on, so its broadcast can arrive after
    // deltas that already carried more: it never takes text back.
    const checkpoint = data.text || "";
    if (!first && data.streaming && item.text.length > checkpoint.length &&
        item.text.startsWith(checkpoint)) return;
    item.data = data;
    item.text = data.text || "";
    item.body.textContent = item.text;
    item.el.classList.toggle("streaming", Boolean(data.streaming));
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

  renderApproval(item) {
    item.approvalId = item.data.approval;
    item.state = el("p", { class: "approval-state" });
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
    item.actions = el("div", { class: "approval-actions" }, item.reason, item.approve, item.reject);
    item.el = el(
      "li",
      { class: "approval", "data-approval": item.approvalId },
      el("div", { class: "tool-head" }, "Approval needed for ", el("code", {}, item.data.tool || "")),
      el("pre", {}, pretty(item.data.arguments)),
      item.state,
      item.actions,
    );
    this.approvals.set(item.approvalId, item);
    // The approval card shows the arguments; the call it belongs to need not repeat them.
    const call = this.toolCalls.get(item.data.tool_call_id);
    if (call && call.el) call.el.classList.add("has-approval");
    this.renderApprovalState(item);
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
    const decidable =
      this.canDecide && !final && turn && turn.status === "waiting_for_approval";
    item.actions.hidden = !decidable;
  }

  renderDecision(item) {
    this.decisions.set(item.data.approval, item.data);
    const approved = item.data.decision === "approved";
    let text = `${approved ? "Approved" : "Rejected"} by ${item.data.decided_by}`;
    if (item.data.status === "pending") {
      text += ` (${item.data.approvals_given} of ${item.data.approvals_needed})`;
    }
    // A number names the grant that let this call through; an object is a grant being made.
    if (typeof item.data.grant === "number") text += " (approved for this session)";
    else if (item.data.grant) text += ", and for the rest of this session";
    if (item.data.reason) text += `: ${item.data.reason}`;
    item.el = el("li", { class: `notice decision ${approved ? "approved" : "rejected"}` }, text);
    const approval = this.approvals.get(item.data.approval);
    if (approval) this.renderApprovalState(approval);
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
    item.approve.disabled = true;
    item.reject.disabled = true;
    const template = action === "approve" ? this.urls.approve : this.urls.reject;
    const url = template.replace("/0/", `/${item.approvalId}/`);
    const result = await postJSON(url, { reason: item.reason.value.trim() });
    item.approve.disabled = false;
    item.reject.disabled = false;
    if (!result.ok) this.showNotice(readableError(result));
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
