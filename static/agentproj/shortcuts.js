// The chat page's keyboard shortcuts (listed in #shortcuts-dialog): a new chat, the message box,
// and this list. Esc, Enter and Shift+Enter belong to the composer (chat.js).

const dialog = document.getElementById("shortcuts-dialog");
const message = document.getElementById("message");

// Typing in a field keeps its characters: "/" and "?" are shortcuts only outside one.
function typing(target) {
  return Boolean(target.closest && target.closest("input, textarea, select, [contenteditable]"));
}

function newChat() {
  const button = document.getElementById("sidebar-new-chat");
  if (button) button.closest("form").requestSubmit(button);
}

document.addEventListener("keydown", (e) => {
  if (e.defaultPrevented || e.isComposing || dialog.open) return;
  const command = e.ctrlKey || e.metaKey;
  if (command && e.shiftKey && e.key.toLowerCase() === "o") {
    e.preventDefault();
    newChat();
  } else if (!command && !e.altKey && !typing(e.target)) {
    if (e.key === "/") {
      e.preventDefault();
      message.focus();
    } else if (e.key === "?") {
      e.preventDefault();
      dialog.showModal();
    }
  }
});

document.getElementById("shortcuts-open").addEventListener("click", () => dialog.showModal());
// Closed, the list gives the keyboard back to the message box.
dialog.addEventListener("close", () => message.focus());
