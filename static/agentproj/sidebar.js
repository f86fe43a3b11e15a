// The chat page's sessions sidebar: collapsible beside the chat on a wide screen (the choice is
// remembered in this browser), a drawer on a narrow one (opened by the Sessions button, closed
// by Esc, by its close button, by going elsewhere or by choosing a session), and a filter of its
// sessions by title as one types (Enter searches them all on the list page). session_list.js
// keeps its sessions live.
//
// A plain script, run where the page includes it, right after the sidebar: the sidebar is
// collapsed before the chat is drawn, so the page never jumps as it opens.

(() => {
  const STORED = "agentproj.sidebar";
  const layout = document.getElementById("chat-layout");
  const sidebar = document.getElementById("sidebar");
  const opener = document.getElementById("sidebar-open");
  const collapser = document.getElementById("sidebar-collapse");
  const closer = document.getElementById("sidebar-close");
  const search = document.getElementById("sidebar-search");
  const items = document.getElementById("sidebar-sessions");
  const none = document.getElementById("sidebar-none");

  function remembered() {
    try {
      return localStorage.getItem(STORED);
    } catch {
      return null;
    }
  }

  function remember(state) {
    try {
      localStorage.setItem(STORED, state);
    } catch {
      // Storage refused (a private window): the choice lasts as long as the page.
    }
  }

  function setCollapsed(collapsed) {
    layout.dataset.sidebar = collapsed ? "collapsed" : "expanded";
    collapser.setAttribute("aria-expanded", String(!collapsed));
  }

  // The Sessions button shows only where the sidebar is a drawer (the stylesheet decides).
  function isDrawer() {
    return getComputedStyle(opener).display !== "none";
  }

  function isOpen() {
    return layout.dataset.drawer === "open";
  }

  function openDrawer() {
    layout.dataset.drawer = "open";
    opener.setAttribute("aria-expanded", "true");
    const first = items.querySelector("a[aria-current]") || sidebar.querySelector(".sidebar-new");
    first.focus();
  }

  function closeDrawer({ refocus }) {
    if (!isOpen()) return;
    delete layout.dataset.drawer;
    opener.setAttribute("aria-expanded", "false");
    if (refocus) opener.focus();
  }

  function filter() {
    const wanted = search.value.trim().toLocaleLowerCase();
    let shown = 0;
    for (const item of items.children) {
      const title = item.querySelector(".sidebar-title").textContent.toLocaleLowerCase();
      item.hidden = !title.includes(wanted);
      if (!item.hidden) shown += 1;
    }
    none.hidden = !wanted || shown > 0;
  }

  setCollapsed(remembered() === "collapsed");
  collapser.addEventListener("click", () => {
    const collapsed = layout.dataset.sidebar !== "collapsed";
    setCollapsed(collapsed);
    remember(collapsed ? "collapsed" : "expanded");
  });

  opener.addEventListener("click", () => {
    if (isOpen()) closeDrawer({ refocus: true });
    else openDrawer();
  });
  closer.addEventListener("click", () => closeDrawer({ refocus: true }));
  // Captured before the chat's own Esc (which stops a running turn) sees it.
  document.addEventListener(
    "keydown",
    (e) => {
      if (e.key !== "Escape" || e.isComposing || !isOpen()) return;
      e.preventDefault();
      closeDrawer({ refocus: true });
    },
    true,
  );
  document.addEventListener("pointerdown", (e) => {
    if (isOpen() && !sidebar.contains(e.target) && !opener.contains(e.target)) {
      closeDrawer({ refocus: false });
    }
  });
  // Tabbing out of the drawer closes it; the Sessions button closes it itself.
  sidebar.addEventListener("focusout", (e) => {
    const next = e.relatedTarget;
    if (next && !sidebar.contains(next) && !opener.contains(next)) closeDrawer({ refocus: false });
  });
  items.addEventListener("click", (e) => {
    if (e.target.closest("a")) closeDrawer({ refocus: false });
  });
  // Widened past the drawer's width, the sidebar sits beside the chat again.
  window.addEventListener("resize", () => {
    if (isOpen() && !isDrawer()) closeDrawer({ refocus: false });
  });

  search.addEventListener("input", filter);
  items.addEventListener("sessions:placed", filter);
})();
