// The live chat page. The server draws the timeline, one partial per event kind, and the session
// socket sends each live event with its fragment rendered through the same partials. This script
// places those fragments (every one is keyed by its event's seq, so a replay, a reconnect or a
// second delivery changes nothing twice), appends live text deltas, and drives the buttons.
// Every word it shows comes from the server: the fragments, an answer's detail, or the page's
// vocabulary (#vocabulary).

import { sendJSON } from "./http.js";
import { SessionHead } from "./session_head.js";
import { CLOSE_CODES, EVENT_KINDS as KINDS, TEXTS } from "./vocabulary.js";

const RECONNECT_BASE_MS = 500;
const RECONNECT_MAX_MS = 10000;
const NEAR_BOTTOM_PX = 120;
const COPY_LABEL_MS = 2000;
// Where streamed text goes on: the last paragraph or list item, through the lists around it.
const CONTINUED = new Set(["P", "UL", "OL", "LI", "BLOCKQUOTE"]);
const LISTS = new Set(["UL", "OL"]);

function parse(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function parseAll(html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  return [...template.content.childNodes];
}

// The server counts text in code points (Python's), a string's length in UTF-16 units: an
// emoji is one of the first and two of the second.
function codePoints(text) {
  return Array.from(text).length;
}

// Where code point `position` of `text` (`length` code points) starts, counted from the end:
// the positions asked for lie near it.
function unitIndex(text, length, position) {
  let index = text.length;
  for (let left = length - position; left > 0 && index > 0; left--) {
    const unit = text.charCodeAt(index - 1);
    index -= unit >= 0xdc00 && unit <= 0xdfff && index > 1 ? 2 : 1;
  }
  return index;
}

function seqOf(node) {
  return Number(node.dataset.seq || 0);
}

function insertBySeq(list, node) {
  const seq = seqOf(node);
  for (const child of list.children) {
    if (seqOf(child) > seq) {
      list.insertBefore(node, child);
      return;
    }
  }
  list.append(node);
}

// Code blocks of rendered answers get a copy button; the clipboard is the browser's.
function addCopyButtons(root) {
  for (const pre of root.querySelectorAll(".bubble.rendered pre")) {
    if (pre.parentElement.classList.contains("code-block")) continue;
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy-code";
    button.setAttribute("aria-label", TEXTS.copy_code);
    button.textContent = TEXTS.copy;
    const block = document.createElement("div");
    block.className = "code-block";
    pre.replaceWith(block);
    block.append(button, pre);
  }
}

const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
const EXACT = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const TIMES_EVERY_MS = 60000;

// How far a moment is from now, in words: "5 minutes ago", "in 2 hours", "now".
function relative(at, now) {
  const minutes = Math.round((at.getTime() - now) / 60000);
  if (Math.abs(minutes) < 1) return RELATIVE.format(0, "second");
  if (Math.abs(minutes) < 60) return RELATIVE.format(minutes, "minute");
  if (Math.abs(minutes) < 24 * 60) return RELATIVE.format(Math.round(minutes / 60), "hour");
  return null;
}

// A message's time reads relative, older than a day as a date; an approval's expiry counts
// down. Both show the exact moment, in the reader's own time zone, on hover.
function showTimes(root) {
  const now = Date.now();
  for (const time of root.querySelectorAll("time.msg-time, time.countdown")) {
    const at = new Date(time.dateTime);
    if (Number.isNaN(at.getTime())) continue;
    const days = Math.round((at.getTime() - now) / 86400000);
    const countdown = time.classList.contains("countdown");
    const far = countdown ? RELATIVE.format(days, "day") : EXACT.format(at);
    time.textContent = relative(at, now) || far;
    time.title = EXACT.format(at);
  }
}

// A code block's text, or an answer's as it reads.
async function copyText(button, text) {
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = TEXTS.copied;
  } catch {
    button.textContent = TEXTS.copy_failed;
  }
  setTimeout(() => {
    button.textContent = TEXTS.copy;
  }, COPY_LABEL_MS);
}

// A tool use opens to its arguments, result and decided card, a sub-agent to its work; each
// closes again.
function toggleOpen(button) {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  button.closest(".tool-use, .turn").classList.toggle("open", open);
}

function readableError(result) {
  if (result.status === 0) return TEXTS.unreachable;
  const code = result.data && result.data.code;
  if (code && TEXTS.refusals[code]) return TEXTS.refusals[code];
  if (result.data && typeof result.data.detail === "string") return result.data.detail;
  return TEXTS.failed;
}

class ChatPage {
  constructor(root) {
    this.root = root;
    this.sessionId = root.dataset.session;
    this.urls = {
      turns: root.dataset.turnsUrl,
      cancel: root.dataset.cancelUrl,
      approve: root.dataset.approveUrl,
      reject: root.dataset.rejectUrl,
      regenerate: root.dataset.regenerateUrl,
      showVersion: root.dataset.showVersionUrl,
    };
    this.head = new SessionHead(root.querySelector("#session-head"), TEXTS);
    this.timeline = root.querySelector("#timeline");
    this.empty = root.querySelector("#empty");
    this.connection = root.querySelector("#connection");
    this.form = root.querySelector("#composer");
    this.message = root.querySelector("#message");
    this.notice = root.querySelector("#notice");
    this.jump = root.querySelector("#jump-latest");
    // Whether the view follows the newest text: it does while the reader is at the bottom,
    // and stays put once they scroll up, until they come back down or jump there.
    this.following = true;
    this.buttons = {
      send: root.querySelector("#send"),
      interrupt: root.querySelector("#send-interrupt"),
      queue: root.querySelector("#send-queue"),
      stop: root.querySelector("#stop"),
    };
    // The page was drawn up to this event; the socket resumes after it.
    this.lastSeq = Number(root.dataset.lastSeq || 0);
    // The raw text of each streaming assistant message, as the socket has it (seq -> text),
    // and how much of it the bubble shows rendered (seq -> length).
    // Per streaming answer: its text so far, that text's length in code points, and where in
    // it the server's rendering ends (the raw text after that is shown as it is).
    this.streams = new Map();
    this.stopRequestedFor = null;
    this.sending = false;
    this.socket = null;
    this.attempt = 0;
    this.reconnectTimer = null;
    this.leaving = false;
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
    document.addEventListener("keydown", (e) => this.onKey(e));
    this.buttons.interrupt.addEventListener("click", () => this.send("interrupt"));
    this.buttons.queue.addEventListener("click", () => this.send("enqueue"));
    this.buttons.stop.addEventListener("click", () => this.stop());
    this.root.addEventListener("click", (e) => this.onClick(e));
    this.root.addEventListener("change", (e) => {
      if (e.target.matches(".approve-for-session")) {
        const fields = e.target.closest(".approval-grant").querySelector(".grant-fields");
        fields.hidden = !e.target.checked;
      }
    });
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
    addCopyButtons(this.timeline);
    showTimes(this.timeline);
    setInterval(() => showTimes(this.timeline), TIMES_EVERY_MS);
    this.updateControls();
    // A reload opens at the newest text, not where the browser last was.
    if ("scrollRestoration" in history) history.scrollRestoration = "manual";
    window.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.jump.addEventListener("click", () => {
      this.scrollToEnd();
      this.message.focus({ preventScroll: true });
    });
    this.scrollToEnd();
    this.connect();
  }

  onScroll() {
    this.following = this.nearBottom();
    if (this.following) this.jump.hidden = true;
  }

  // After new content: follow it, or offer the way down.
  keepInView() {
    if (this.following) this.scrollToEnd();
    else this.jump.hidden = false;
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
      if (message.type === "event") this.onEvent(message);
      else if (message.type === "checkpoint") this.onCheckpoint(message);
      else if (message.type === "delta") this.onDelta(message.delta);
      else if (message.type === "session") this.head.applyTitle(message);
      else if (message.type === "session_deleted") this.sessionGone();
      else if (message.type === "replayed") {
        this.attempt = 0;
        this.setConnection("live");
      }
    });
    socket.addEventListener("close", (event) => {
      if (socket !== this.socket || this.leaving) return;
      this.socket = null;
      // Reconnecting cannot help when the login ended (logged out, expired) or the session is
      // gone (deleted).
      if (event.code === CLOSE_CODES.LOGIN_ENDED) {
        this.setConnection("ended");
        this.showNotice(TEXTS.login_ended);
        return;
      }
      if (event.code === CLOSE_CODES.NOT_FOUND) {
        this.sessionGone();
        return;
      }
      this.scheduleReconnect();
    });
  }

  sessionGone() {
    this.leaving = true;
    if (this.socket) this.socket.close();
    this.setConnection("gone");
    this.head.gone();
    for (const button of this.root.querySelectorAll("button")) button.disabled = true;
  }

  scheduleReconnect() {
    if (this.reconnectTimer) return;
    const ceiling = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this.setConnection("reconnecting");
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  // A streaming assistant message is updated in place (same seq): resuming just before it
  // replays its latest text, and with it the raw text that live deltas continue.
  resumeFrom() {
    let from = this.lastSeq;
    for (const item of this.timeline.querySelectorAll(".msg.assistant[data-streaming='1']")) {
      from = Math.min(from, seqOf(item) - 1);
    }
    return from;
  }

  setConnection(state) {
    this.connection.dataset.state = state;
    this.connection.textContent = TEXTS.connection[state];
  }

  // Events

  onEvent({ event, fragment, shell, updates, place, versions }) {
    this.lastSeq = Math.max(this.lastSeq, event.seq);
    const turnList = event.turn === null ? this.timeline : this.turnList(event.turn, shell);
    // What belongs inside another item (a call's result or card, a card's decision) goes
    // into that item's list.
    const list = place ? document.getElementById(place) : turnList;
    const node = fragment ? parse(fragment) : null;
    if (node && list) {
      if (event.kind === KINDS.STATUS) this.placeFoot(event, node);
      else if (event.kind === KINDS.TOOL_PROGRESS) this.placeProgress(list, node);
      else if (event.kind === KINDS.ASSISTANT_MESSAGE) this.placeAssistant(event, list, node);
      else if (!document.getElementById(node.id)) insertBySeq(list, node);
      showTimes(node);
    }
    for (const html of updates || []) this.applyUpdate(parse(html));
    if (versions) this.showVersions(versions);
    this.empty.hidden = true;
    this.updateControls();
    this.keepInView();
  }

  // The events list of a turn, drawing the turn (inside its parent's, for a sub-agent) the
  // first time one of its events arrives.
  turnList(turnId, shell) {
    if (!document.getElementById(`turn-${turnId}`) && shell) {
      const turn = parse(shell);
      const parent = turn.dataset.parent
        ? document.getElementById(`turn-${turn.dataset.parent}-events`)
        : null;
      insertBySeq(parent || this.timeline, turn);
    }
    return document.getElementById(`turn-${turnId}-events`);
  }

  placeFoot(event, node) {
    const foot = document.getElementById(node.id);
    if (foot && seqOf(foot) < event.seq) foot.replaceWith(node);
  }

  // A tool may report progress many times: its call shows the latest, in place. Progress of
  // a call the page does not show stands in its turn.
  placeProgress(list, node) {
    if (!list.classList.contains("tool-progress-slot")) {
      if (!document.getElementById(node.id)) insertBySeq(list, node);
      return;
    }
    const shown = list.querySelector(".tool-progress");
    if (!shown) list.append(node);
    else if (seqOf(shown) < seqOf(node)) shown.replaceWith(node);
  }

  // A streaming message shows the server's rendering of its latest checkpoint, followed by the
  // raw text that deltas brought since; the final rendering replaces both.
  placeAssistant(event, list, node) {
    const shown = document.getElementById(node.id);
    const streaming = Boolean(event.data.streaming);
    const text = event.data.text || "";
    if (!shown) {
      insertBySeq(list, node);
      if (streaming) {
        this.streams.set(event.seq, {
          text,
          length: codePoints(text),
          rendered: text.trimEnd().length,
        });
        this.showRawTail(event.seq, node.querySelector(".bubble"));
      }
      addCopyButtons(node);
      return;
    }
    // The final text wins over a checkpoint broadcast that arrives after it, and a replay of
    // the final message leaves the bubble (and a selection in it) alone.
    if (shown.dataset.streaming === "0") return;
    const bubble = shown.querySelector(".bubble");
    // The same elements take the new rendering, so nothing else of the message is redrawn.
    bubble.replaceChildren(...node.querySelector(".bubble").childNodes);
    if (!streaming) {
      this.streams.delete(event.seq);
      shown.className = node.className;
      shown.dataset.streaming = "0";
      shown.removeAttribute("aria-busy");
      addCopyButtons(shown);
      return;
    }
    // A checkpoint is written while the stream goes on, so its broadcast can arrive after
    // deltas that already carried more: it never takes text back.
    const known = this.streams.get(event.seq);
    const ahead = known !== undefined && known.text.length > text.length && known.text.startsWith(text);
    const stream = ahead ? known : { text, length: codePoints(text) };
    // Rendering drops the whitespace a checkpoint ends with; the raw tail keeps it, so the
    // next delta does not run into the last word.
    stream.rendered = text.trimEnd().length;
    this.streams.set(event.seq, stream);
    this.showRawTail(event.seq, bubble);
    addCopyButtons(shown);
  }

  // A later checkpoint of an answer this socket has shown brings only what the page lacks:
  // the HTML of the blocks closed since (or of all closed blocks, with `replace`), the open
  // block at the end, redrawn, and the text the deltas did not bring, from where it ends.
  onCheckpoint(checkpoint) {
    const item = document.getElementById(`event-${checkpoint.seq}`);
    const stream = this.streams.get(checkpoint.seq);
    if (!item || item.dataset.streaming !== "1" || !stream) return;
    if (checkpoint.text !== undefined) {
      if (checkpoint.offset !== stream.length) return;
      stream.text += checkpoint.text;
      stream.length += codePoints(checkpoint.text);
    }
    stream.rendered = unitIndex(stream.text, stream.length, checkpoint.rendered);
    const bubble = item.querySelector(".bubble");
    bubble.querySelector(".tail")?.remove();
    bubble.querySelector(":scope > .open-block")?.remove();
    if (checkpoint.replace) bubble.replaceChildren();
    // Blocks are separated by a line break, as in the server's rendering of the whole.
    const added = [checkpoint.html, checkpoint.open_html].filter(Boolean).join("\n");
    if (added) bubble.append(...parseAll(bubble.lastChild ? `\n${added}` : added));
    this.showRawTail(checkpoint.seq, bubble);
    addCopyButtons(item);
    this.keepInView();
  }

  onDelta(delta) {
    const stream = this.streams.get(delta.seq);
    // A delta that does not start where the text ends is stale or early: the next checkpoint
    // brings what is missing.
    if (stream === undefined || delta.offset !== stream.length) return;
    const item = document.getElementById(`event-${delta.seq}`);
    if (!item || item.dataset.streaming !== "1") return;
    stream.text += delta.text;
    stream.length += codePoints(delta.text);
    this.showRawTail(delta.seq, item.querySelector(".bubble"));
    this.keepInView();
  }

  // The text not rendered yet, raw, after the rendering. It continues the last paragraph or
  // list item, so the line does not jump at the next checkpoint.
  showRawTail(seq, bubble) {
    const stream = this.streams.get(seq);
    const text = stream.text.slice(stream.rendered);
    let tail = bubble.querySelector(".tail");
    if (!tail) {
      if (!text) return;
      tail = document.createElement("span");
      tail.className = "tail";
      let host = bubble;
      for (let last = bubble.lastElementChild; last; last = last.lastElementChild) {
        if (!CONTINUED.has(last.tagName) && !last.classList.contains("open-block")) break;
        host = last;
      }
      (LISTS.has(host.tagName) ? bubble : host).append(tail);
    }
    tail.textContent = text;
  }

  // A fragment redrawn elsewhere on the page replaces its element; an approval card takes the
  // state its redrawn state line carries.
  applyUpdate(node) {
    const shown = document.getElementById(node.id);
    if (!shown) return;
    shown.replaceWith(node);
    showTimes(node.parentElement);
    if (!node.classList.contains("approval-state")) return;
    const card = node.closest(".approval");
    card.dataset.state = node.dataset.state;
    const actions = card.querySelector(".approval-actions");
    if (actions) actions.hidden = node.dataset.decidable !== "1";
  }

  // One version of a turn is shown; the others stay on the page, hidden, one click away.
  showVersions({ shown, hidden }) {
    for (const id of hidden) {
      const turn = document.getElementById(`turn-${id}`);
      if (turn) turn.hidden = true;
    }
    const turn = document.getElementById(`turn-${shown}`);
    if (turn) turn.hidden = false;
  }

  // The top-level turn that is active, as its foot says.
  activeTurn() {
    const foot = this.timeline.querySelector(":scope > .turn > .turn-foot[data-active]");
    if (!foot) return null;
    return {
      id: Number(foot.parentElement.dataset.turn),
      // Active but no longer stoppable: the turn is on its way to stopping.
      stoppable: foot.hasAttribute("data-stoppable"),
    };
  }

  // Buttons

  onClick(e) {
    const button = e.target.closest("button");
    if (!button) return;
    if (button.matches(".copy-code")) {
      copyText(button, button.parentElement.querySelector("pre").textContent);
    } else if (button.matches(".copy-answer")) {
      copyText(button, button.closest(".msg").querySelector(".bubble").innerText);
    } else if (button.matches(".tool-toggle, .sub-agent-toggle")) toggleOpen(button);
    else if (button.matches(".cancel-queued")) this.withdraw(button);
    else if (button.matches(".edit-resend")) this.editAndResend(button);
    else if (button.matches(".regenerate")) this.regenerate(button);
    else if (button.matches(".show-version")) this.showVersion(button);
    else if (button.matches(".edit-message")) this.openEditor(button);
    else if (button.matches(".save-edit")) this.saveEdit(button.closest(".message-editor"));
    else if (button.matches(".cancel-edit")) this.closeEditor(button.closest(".message-editor"));
    else if (button.matches(".revoke")) this.revoke(button);
    else if (button.matches(".edit-arguments")) this.toggleEditor(button.closest(".approval"));
    else if (button.matches(".approve")) this.decide(button.closest(".approval"), "approve");
    else if (button.matches(".reject")) this.decide(button.closest(".approval"), "reject");
  }

  // Esc stops the active turn, unless it belongs to a field or dialog that uses it.
  onKey(e) {
    if (e.key !== "Escape" || e.defaultPrevented || e.isComposing) return;
    const target = e.target;
    const field = target.closest && target.closest("input, textarea, select, dialog");
    if (field && target !== this.message) return;
    if (document.querySelector("dialog[open]")) return;
    if (this.activeTurn()) {
      e.preventDefault();
      this.stop();
    }
  }

  userMessageOf(button) {
    const turn = document.getElementById(`turn-${button.dataset.turn}`);
    const bubble = turn && turn.querySelector(":scope > .turn-events > .msg.user .bubble");
    return bubble ? bubble.textContent : "";
  }

  // The last message back in the composer, to change and send as a new turn.
  editAndResend(button) {
    this.message.value = this.userMessageOf(button);
    this.message.focus();
    this.message.setSelectionRange(this.message.value.length, this.message.value.length);
  }

  // The same message answered again, as the turn's next version; the earlier answer stays
  // one click away ("‹ 1/2 ›").
  async regenerate(button) {
    if (this.sending) return;
    button.disabled = true;
    this.sending = true;
    this.updateControls();
    const result = await sendJSON("POST", this.turnUrl(this.urls.regenerate, button), {});
    this.sending = false;
    this.showNotice(result.ok ? "" : readableError(result));
    this.updateControls();
    button.disabled = false;
    // The old version hides once the new one shows: the keyboard stays in the composer.
    this.message.focus();
  }

  // The version the button names is shown; the version_shown event redraws the turns.
  async showVersion(button) {
    if (!button.dataset.turn) return;
    button.disabled = true;
    const result = await sendJSON("POST", this.turnUrl(this.urls.showVersion, button), {});
    this.showNotice(result.ok ? "" : readableError(result));
    if (!result.ok) button.disabled = false;
    // The button's foot is hidden with its version: the keyboard goes to the same button of
    // the version shown now, once its event has arrived, else to the composer.
    const foot = document.getElementById(`turn-${button.dataset.turn}-foot`);
    const shown = foot && !foot.closest(".turn").hidden;
    const label = button.getAttribute("aria-label");
    const same = shown && foot.querySelector(`.show-version[aria-label="${label}"]`);
    (same && !same.disabled ? same : this.message).focus({ preventScroll: true });
  }

  // The last message becomes a box in its place; saved, it is answered as the turn's next
  // version, and the message as it was stays one click away ("‹ 1/2 ›").
  openEditor(button) {
    const item = button.closest(".msg");
    const open = item.querySelector(".message-editor");
    if (open) {
      open.querySelector("textarea").focus();
      return;
    }
    const bubble = item.querySelector(".bubble");
    const editor = document.createElement("div");
    editor.className = "message-editor";
    editor.dataset.turn = button.dataset.turn;
    const box = document.createElement("textarea");
    box.value = bubble.textContent;
    box.rows = Math.min(12, box.value.split("\n").length + 1);
    box.setAttribute("aria-label", TEXTS.edited_message);
    box.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        this.closeEditor(editor);
      } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.saveEdit(editor);
      }
    });
    const actions = document.createElement("div");
    actions.className = "message-editor-actions";
    for (const [name, text] of [
      ["cancel-edit", TEXTS.cancel_edit],
      ["save-edit", TEXTS.save_edit],
    ]) {
      const control = document.createElement("button");
      control.type = "button";
      control.className = name;
      control.textContent = text;
      actions.append(control);
    }
    editor.append(box, actions);
    bubble.hidden = true;
    button.hidden = true;
    bubble.after(editor);
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  closeEditor(editor) {
    const item = editor.closest(".msg");
    item.querySelector(".bubble").hidden = false;
    const button = item.querySelector(".edit-message");
    button.hidden = false;
    editor.remove();
    button.focus();
  }

  async saveEdit(editor) {
    const text = editor.querySelector("textarea").value.trim();
    if (!text) {
      this.showNotice(TEXTS.empty);
      return;
    }
    if (this.sending) return;
    this.sending = true;
    this.updateControls();
    const result = await sendJSON("POST", this.turnUrl(this.urls.regenerate, editor), {
      message: text,
    });
    this.sending = false;
    this.showNotice(result.ok ? "" : readableError(result));
    this.updateControls();
    if (!result.ok) return;
    // The edited message is the new version's; this one goes back as it was, hidden with it.
    this.closeEditor(editor);
    this.message.focus();
  }

  turnUrl(template, button) {
    return template.replace("/turns/0/", `/turns/${button.dataset.turn}/`);
  }

  async send(onBusy) {
    const text = this.message.value.trim();
    if (!text) {
      this.showNotice(TEXTS.empty);
      this.message.focus();
      return;
    }
    if (this.sending) return;
    if (await this.post(text, onBusy)) this.message.value = "";
    this.message.focus();
  }

  async post(text, onBusy) {
    this.sending = true;
    this.updateControls();
    const result = await sendJSON("POST", this.urls.turns, { message: text, on_busy: onBusy });
    this.sending = false;
    this.showNotice(result.ok ? "" : readableError(result));
    this.updateControls();
    return result.ok;
  }

  async stop() {
    const turn = this.activeTurn();
    if (!turn || !turn.stoppable || this.stopRequestedFor === turn.id) return;
    this.stopRequestedFor = turn.id;
    const hadFocus = document.activeElement === this.buttons.stop;
    this.updateControls();
    // Stop is disabled now: the keyboard's place moves to the composer rather than the page's top.
    if (hadFocus) this.message.focus();
    // Naming the turn makes a late click harmless: a turn that already ended answers 200.
    const result = await sendJSON("POST", this.urls.cancel, { turn: turn.id });
    if (!result.ok) {
      if (this.stopRequestedFor === turn.id) this.stopRequestedFor = null;
      if (result.data?.code !== "no_active_turn") this.showNotice(readableError(result));
      this.updateControls();
    }
  }

  // A message waiting in line is withdrawn: its turn ends stopped without ever running.
  async withdraw(button) {
    button.disabled = true;
    const result = await sendJSON("POST", this.urls.cancel, { turn: Number(button.dataset.turn) });
    if (!result.ok) {
      button.disabled = false;
      this.showNotice(readableError(result));
    }
    // The button goes with the foot its turn's new status redraws: the composer has the focus.
    this.message.focus();
  }

  // Approvals

  currentArguments(card) {
    return JSON.parse(card.querySelector(".approval-state").dataset.arguments || "{}");
  }

  toggleEditor(card) {
    const editor = card.querySelector(".arguments-editor");
    const toggle = card.querySelector(".edit-arguments");
    const opening = editor.hidden;
    // Closing discards the edit: an approval then approves the arguments as they stand (a
    // quorum's later approvers start from the arguments an earlier one changed).
    editor.value = JSON.stringify(this.currentArguments(card), null, 2);
    editor.rows = Math.min(16, editor.value.split("\n").length + 1);
    editor.hidden = !opening;
    toggle.textContent = opening ? TEXTS.discard_edit : TEXTS.edit_arguments;
    toggle.setAttribute("aria-expanded", String(opening));
    this.showCardError(card, "");
    if (opening) editor.focus();
  }

  async decide(card, action) {
    const { body, problem } =
      action === "approve"
        ? this.approvalBody(card)
        : { body: { reason: card.querySelector(".reason").value.trim() } };
    // A refusal stays on the card it is about; the request stays pending and editable.
    this.showCardError(card, problem || "");
    if (problem) return;
    const buttons = card.querySelectorAll(".approve, .reject");
    for (const button of buttons) button.disabled = true;
    const template = action === "approve" ? this.urls.approve : this.urls.reject;
    const url = template.replace("/0/", `/${card.dataset.approval}/`);
    const result = await sendJSON("POST", url, body);
    for (const button of buttons) button.disabled = false;
    if (!result.ok) {
      this.showCardError(card, readableError(result));
      return;
    }
    // Decided, the card's controls go: the keyboard moves to the composer, not the page's top.
    this.message.focus({ preventScroll: true });
  }

  // An approval sends the edited arguments while the editor is open, and the grant if chosen.
  approvalBody(card) {
    const body = { reason: card.querySelector(".reason").value.trim() };
    const editor = card.querySelector(".arguments-editor");
    if (!editor.hidden) {
      let edited;
      try {
        edited = JSON.parse(editor.value);
      } catch (error) {
        return { problem: `${TEXTS.invalid_json} ${error.message}` };
      }
      if (typeof edited !== "object" || edited === null || Array.isArray(edited)) {
        return { problem: TEXTS.not_an_object };
      }
      body.arguments = edited;
    }
    const grant = card.querySelector(".approve-for-session");
    if (grant && grant.checked) {
      const match = [...card.querySelectorAll(".grant-field:checked")].map((box) => box.value);
      body.grant = match.length ? { match } : true;
    }
    return { body };
  }

  showCardError(card, text) {
    const error = card.querySelector(".approval-error");
    error.textContent = text;
    error.hidden = !text;
  }

  // The grant's row changes when the revocation's event redraws the list.
  async revoke(button) {
    const section = button.closest("#grants");
    const error = section.querySelector(".grant-error");
    const id = button.closest(".grant").dataset.grant;
    button.disabled = true;
    const url = section.dataset.revokeUrl.replace("/grants/0/", `/grants/${id}/`);
    const result = await sendJSON("POST", url, {});
    button.disabled = result.ok;
    error.textContent = result.ok ? "" : readableError(result);
    error.hidden = result.ok;
  }

  // Controls

  updateControls() {
    const turn = this.activeTurn();
    if (this.stopRequestedFor !== null && (!turn || turn.id !== this.stopRequestedFor)) {
      this.stopRequestedFor = null;
    }
    const { send, interrupt, queue, stop } = this.buttons;
    send.hidden = Boolean(turn);
    interrupt.hidden = !turn;
    queue.hidden = !turn;
    for (const button of [send, interrupt, queue]) button.disabled = this.sending;

    const stopping = turn && (!turn.stoppable || this.stopRequestedFor === turn.id);
    stop.disabled = !turn || !turn.stoppable || Boolean(stopping);
    stop.classList.toggle("stopping", Boolean(stopping));
    stop.querySelector(".label").textContent = stopping ? TEXTS.stopping : TEXTS.stop;
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
