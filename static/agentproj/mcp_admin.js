// The MCP server form shows the fields of the chosen transport only: each transport's fieldset
// carries the class "mcp-transport-<transport>" (sessions_app/mcp/admin.py). The other
// transport's fields are disabled as well as hidden, so that the browser does not send them:
// the server refuses a command for an HTTP server, and a value typed before switching would
// otherwise come along unseen. Until a transport is chosen, neither set is shown.

const PREFIX = "mcp-transport-";

const transport = document.getElementById("id_transport");
const fieldsets = document.querySelectorAll(`fieldset[class*="${PREFIX}"]`);

function showChosenTransport() {
  for (const fieldset of fieldsets) {
    const chosen = fieldset.classList.contains(PREFIX + transport.value);
    fieldset.hidden = !chosen;
    for (const field of fieldset.querySelectorAll("input, select, textarea")) {
      field.disabled = !chosen;
    }
  }
}

// A server shown read-only has no transport to choose: the page lists its own fields only.
if (transport) {
  transport.addEventListener("change", showChosenTransport);
  showChosenTransport();
}
