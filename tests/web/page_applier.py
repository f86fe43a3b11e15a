"""The chat page's script (``static/agentproj/chat.js``), what it does with the socket's messages,
in Python: a page drawn by the server, kept live by applying ``event``, ``checkpoint`` and
``delta`` messages as the script does, then read back as a normalised tree to compare with a page
drawn fresh.

Each method mirrors the script's method of the same name (``onEvent`` -> ``on_event``), step by
step; a change to one belongs in the other. Only the timeline's part of the page is kept:
``#timeline``, ``#grants`` and ``#empty``. The buttons' states, the notices and the scrolling are
the script's business after that and change nothing drawn.
"""

from agentproj.vocabulary import PAGE_TEXTS, EventKind
from tests.html_tree import Element, parse

CONTINUED = {"p", "ul", "ol", "li", "blockquote"}
LISTS = {"ul", "ol"}
SHOWN = ("timeline", "grants", "empty")


# The few DOM operations the script uses, on tests.html_tree's elements.


def fragment(html: str) -> Element:
    """``parse`` in chat.js: the first element of the HTML, detached."""
    node = next(child for child in parse(html.strip()).children if isinstance(child, Element))
    node.parent = None
    return node


def seq_of(node: Element) -> int:
    return int(node.attrs.get("data-seq") or 0)


def element_children(node: Element) -> list[Element]:
    return [child for child in node.children if isinstance(child, Element)]


def descendants(node: Element):
    for child in element_children(node):
        yield child
        yield from descendants(child)


def by_id(root: Element, element_id: str) -> Element | None:
    return next((e for e in descendants(root) if e.attrs.get("id") == element_id), None)


def first(root: Element, predicate) -> Element | None:
    return next((e for e in descendants(root) if predicate(e)), None)


def has_classes(node: Element, *names: str) -> bool:
    return set(names) <= node.classes


def closest(node: Element | None, *names: str) -> Element | None:
    while node is not None and not has_classes(node, *names):
        node = node.parent
    return node


def detach(node: Element) -> None:
    if node.parent is not None:
        node.parent.children.remove(node)
        node.parent = None


def append(parent: Element, node: Element) -> None:
    detach(node)
    parent.children.append(node)
    node.parent = parent


def insert_before(parent: Element, node: Element, reference: Element) -> None:
    detach(node)
    parent.children.insert(parent.children.index(reference), node)
    node.parent = parent


def replace_with(old: Element, new: Element) -> None:
    detach(new)
    siblings = old.parent.children
    siblings[siblings.index(old)] = new
    new.parent, old.parent = old.parent, None


def set_hidden(node: Element, hidden: bool) -> None:
    if hidden:
        node.attrs["hidden"] = ""
    else:
        node.attrs.pop("hidden", None)


def set_text(node: Element, text: str) -> None:
    node.children = [text]


def insert_by_seq(parent: Element, node: Element) -> None:
    seq = seq_of(node)
    for child in element_children(parent):
        if seq_of(child) > seq:
            insert_before(parent, node, child)
            return
    append(parent, node)


def add_copy_buttons(root: Element) -> None:
    """Code blocks of rendered answers get a copy button (``addCopyButtons``)."""
    blocks = [
        pre
        for pre in descendants(root)
        if pre.tag == "pre" and closest(pre.parent, "bubble", "rendered") is not None
    ]
    for pre in blocks:
        if has_classes(pre.parent, "code-block"):
            continue
        button = Element(
            "button",
            {"type": "button", "class": "copy-code", "aria-label": PAGE_TEXTS["copy_code"]},
            [PAGE_TEXTS["copy"]],
        )
        block = Element("div", {"class": "code-block"})
        replace_with(pre, block)
        append(block, button)
        append(block, pre)


class ChatPage:
    """``ChatPage`` of chat.js, for the part of the page the socket's messages change."""

    def __init__(self, html: str):
        self.document = parse(html)
        self.timeline = by_id(self.document, "timeline")
        self.empty = by_id(self.document, "empty")
        chat = by_id(self.document, "chat")
        self.last_seq = int(chat.attrs.get("data-last-seq") or 0) if chat else 0
        self.streamed: dict[int, str] = {}
        self.rendered_up_to: dict[int, int] = {}
        # start()
        add_copy_buttons(self.timeline)

    def apply(self, messages: list[dict]) -> None:
        for message in messages:
            if message["type"] == "event":
                self.on_event(message)
            elif message["type"] == "checkpoint":
                self.on_checkpoint(message)
            elif message["type"] == "delta":
                self.on_delta(message["delta"])

    def resume_from(self) -> int:
        resume = self.last_seq
        for item in descendants(self.timeline):
            if has_classes(item, "msg", "assistant") and item.attrs.get("data-streaming") == "1":
                resume = min(resume, seq_of(item) - 1)
        return resume

    # Events

    def on_event(self, message: dict) -> None:
        event, html = message["event"], message.get("fragment")
        self.last_seq = max(self.last_seq, event["seq"])
        if event["turn"] is None:
            turn_list = self.timeline
        else:
            turn_list = self.turn_list(event["turn"], message.get("shell"))
        place = message.get("place")
        target = self.element(place) if place else turn_list
        node = fragment(html) if html else None
        if node is not None and target is not None:
            if event["kind"] == EventKind.STATUS:
                self.place_foot(event, node)
            elif event["kind"] == EventKind.TOOL_PROGRESS:
                self.place_progress(target, node)
            elif event["kind"] == EventKind.ASSISTANT_MESSAGE:
                self.place_assistant(event, target, node)
            elif self.element(node.attrs.get("id")) is None:
                insert_by_seq(target, node)
        for update in message.get("updates") or []:
            self.apply_update(fragment(update))
        if message.get("versions"):
            self.show_versions(message["versions"])
        set_hidden(self.empty, True)

    def show_versions(self, versions: dict) -> None:
        for turn_id in versions["hidden"]:
            turn = self.element(f"turn-{turn_id}")
            if turn is not None:
                set_hidden(turn, True)
        turn = self.element(f"turn-{versions['shown']}")
        if turn is not None:
            set_hidden(turn, False)

    def element(self, element_id: str | None) -> Element | None:
        """``document.getElementById``: no element for no id."""
        return by_id(self.document, element_id) if element_id else None

    def turn_list(self, turn_id: int, shell: str | None) -> Element | None:
        if by_id(self.document, f"turn-{turn_id}") is None and shell:
            turn = fragment(shell)
            parent_id = turn.attrs.get("data-parent")
            parent = by_id(self.document, f"turn-{parent_id}-events") if parent_id else None
            insert_by_seq(parent or self.timeline, turn)
        return by_id(self.document, f"turn-{turn_id}-events")

    def place_foot(self, event: dict, node: Element) -> None:
        foot = by_id(self.document, node.attrs["id"])
        if foot is not None and seq_of(foot) < event["seq"]:
            replace_with(foot, node)

    def place_progress(self, target: Element, node: Element) -> None:
        if not has_classes(target, "tool-progress-slot"):
            if self.element(node.attrs.get("id")) is None:
                insert_by_seq(target, node)
            return
        shown = first(target, lambda e: has_classes(e, "tool-progress"))
        if shown is None:
            append(target, node)
        elif seq_of(shown) < seq_of(node):
            replace_with(shown, node)

    def place_assistant(self, event: dict, target: Element, node: Element) -> None:
        shown = by_id(self.document, node.attrs["id"])
        streaming = bool(event["data"].get("streaming"))
        text = event["data"].get("text") or ""
        seq = event["seq"]
        if shown is None:
            insert_by_seq(target, node)
            if streaming:
                self.streamed[seq] = text
                self.rendered_up_to[seq] = len(text.rstrip())
                self.show_raw_tail(seq, first(node, lambda e: has_classes(e, "bubble")))
            add_copy_buttons(node)
            return
        if shown.attrs.get("data-streaming") == "0":
            return
        bubble = first(shown, lambda e: has_classes(e, "bubble"))
        fresh = first(node, lambda e: has_classes(e, "bubble"))
        bubble.children = []
        for child in list(fresh.children):
            if isinstance(child, Element):
                append(bubble, child)
            else:
                bubble.children.append(child)
        if not streaming:
            self.streamed.pop(seq, None)
            self.rendered_up_to.pop(seq, None)
            shown.attrs["class"] = node.attrs["class"]
            shown.attrs["data-streaming"] = "0"
            shown.attrs.pop("aria-busy", None)
            add_copy_buttons(shown)
            return
        known = self.streamed.get(seq)
        ahead = known is not None and len(known) > len(text) and known.startswith(text)
        if not ahead:
            self.streamed[seq] = text
        self.rendered_up_to[seq] = len(text.rstrip())
        self.show_raw_tail(seq, bubble)
        add_copy_buttons(shown)

    def on_checkpoint(self, checkpoint: dict) -> None:
        seq = checkpoint["seq"]
        item = by_id(self.document, f"event-{seq}")
        if item is None or item.attrs.get("data-streaming") != "1" or seq not in self.streamed:
            return
        if "text" in checkpoint:
            if checkpoint["offset"] != len(self.streamed[seq]):
                return
            self.streamed[seq] += checkpoint["text"]
        self.rendered_up_to[seq] = checkpoint["rendered"]
        bubble = first(item, lambda e: has_classes(e, "bubble"))
        for stale in (
            first(bubble, lambda e: has_classes(e, "tail")),
            next((e for e in element_children(bubble) if has_classes(e, "open-block")), None),
        ):
            if stale is not None:
                detach(stale)
        if checkpoint.get("replace"):
            bubble.children = []
        added = "\n".join(html for html in (checkpoint["html"], checkpoint["open_html"]) if html)
        if added:
            for child in parse(f"\n{added}" if bubble.children else added).children:
                if isinstance(child, Element):
                    append(bubble, child)
                else:
                    bubble.children.append(child)
        self.show_raw_tail(seq, bubble)
        add_copy_buttons(item)

    def on_delta(self, delta: dict) -> None:
        known = self.streamed.get(delta["seq"])
        if known is None or delta["offset"] != len(known):
            return
        item = by_id(self.document, f"event-{delta['seq']}")
        if item is None or item.attrs.get("data-streaming") != "1":
            return
        self.streamed[delta["seq"]] = known + delta["text"]
        self.show_raw_tail(delta["seq"], first(item, lambda e: has_classes(e, "bubble")))

    def show_raw_tail(self, seq: int, bubble: Element) -> None:
        text = self.streamed[seq][self.rendered_up_to[seq] :]
        tail = first(bubble, lambda e: has_classes(e, "tail"))
        if tail is None:
            if not text:
                return
            tail = Element("span", {"class": "tail"})
            host = bubble
            last = (element_children(bubble) or [None])[-1]
            while last is not None and (last.tag in CONTINUED or has_classes(last, "open-block")):
                host = last
                last = (element_children(last) or [None])[-1]
            append(bubble if host.tag in LISTS else host, tail)
        set_text(tail, text)

    def apply_update(self, node: Element) -> None:
        shown = self.element(node.attrs.get("id"))
        if shown is None:
            return
        replace_with(shown, node)
        if not has_classes(node, "approval-state"):
            return
        card = closest(node, "approval")
        card.attrs["data-state"] = node.attrs["data-state"]
        actions = first(card, lambda e: has_classes(e, "approval-actions"))
        if actions is not None:
            set_hidden(actions, node.attrs.get("data-decidable") != "1")

    # Reading it back

    def shown(self) -> list[str]:
        """The timeline's part of the page, one line per element, text and attribute, with
        classes in order and the white space between elements left out."""
        return shown_lines(self.document)


def shown_lines(document: Element) -> list[str]:
    lines: list[str] = []
    for element_id in SHOWN:
        node = by_id(document, element_id)
        if element_id == "empty":
            lines.append(f"#empty hidden={'hidden' in node.attrs}")
        else:
            _lines(node, 0, lines, in_pre=False)
    return lines


def _lines(node: Element, depth: int, lines: list[str], *, in_pre: bool) -> None:
    attrs = dict(node.attrs)
    if "class" in attrs:
        attrs["class"] = " ".join(sorted(attrs["class"].split()))
    shown_attrs = " ".join(f"{name}={value!r}" for name, value in sorted(attrs.items()))
    lines.append(f"{'  ' * depth}<{node.tag} {shown_attrs}>")
    in_pre = in_pre or node.tag == "pre"
    text = ""
    for child in [*node.children, None]:
        if isinstance(child, str):
            text += child
            continue
        if text and (in_pre or text.strip()):
            lines.append(f"{'  ' * (depth + 1)}{text!r}")
        text = ""
        if child is not None:
            _lines(child, depth + 1, lines, in_pre=in_pre)
