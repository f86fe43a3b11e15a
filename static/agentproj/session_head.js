// The chat page's header: the session's title kept live (set by the first message, or renamed
// here or elsewhere), Rename and Delete. The server renders the title; this only puts it in.
// The chat page's socket hands it the session's messages.

import { sendJSON } from "./http.js";

export class SessionHead {
  constructor(head, texts) {
    this.head = head;
    this.texts = texts;
    this.notice = head.querySelector("#head-notice");
    this.dialog = head.querySelector("#delete-dialog");
    head.querySelector("#rename-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.rename();
    });
    head.querySelector("#delete").addEventListener("click", (e) => {
      e.preventDefault();
      this.dialog.returnValue = "";
      this.dialog.showModal();
    });
    this.dialog.addEventListener("close", () => {
      if (this.dialog.returnValue === "delete") this.delete();
    });
  }

  async rename() {
    const title = this.head.querySelector("#rename-title").value;
    const result = await sendJSON("PATCH", this.head.dataset.sessionUrl, { title });
    if (!result.ok) {
      this.showNotice(result.data?.fields?.title?.join(" ") || this.texts.rename_failed);
      return;
    }
    this.showNotice("");
    this.head.querySelector("#rename").open = false;
  }

  async delete() {
    const result = await sendJSON("DELETE", this.head.dataset.sessionUrl);
    if (result.ok) location.assign(this.head.dataset.listUrl);
    else this.showNotice(this.texts.delete_failed);
  }

  applyTitle(message) {
    const template = document.createElement("template");
    template.innerHTML = message.html.trim();
    const fresh = template.content.firstElementChild;
    this.head.querySelector("#session-title").replaceWith(fresh);
    document.title = `${fresh.textContent} · agentproj`;
    const input = this.head.querySelector("#rename-title");
    if (document.activeElement !== input) input.value = message.title;
  }

  gone() {
    this.showNotice(this.texts.session_deleted);
    const back = document.createElement("a");
    back.href = this.head.dataset.listUrl;
    back.textContent = ` ${this.texts.back_to_list}`;
    this.notice.append(back);
    for (const control of this.head.querySelectorAll("#rename, #delete")) control.hidden = true;
  }

  showNotice(text) {
    this.notice.textContent = text;
    this.notice.hidden = !text;
  }
}
