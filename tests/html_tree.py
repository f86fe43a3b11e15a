"""A page's HTML as a tree, read the way a browser without JavaScript shows it: elements by id or
class, and their text."""

from dataclasses import dataclass, field
from html.parser import HTMLParser

NOT_SHOWN = {"script", "style", "template", "head"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list["Element | str"] = field(default_factory=list)
    parent: "Element | None" = None

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.children)

    @property
    def visible_text(self) -> str:
        """What a person reads: the text less scripts, styles and the page's embedded data."""
        if self.tag in NOT_SHOWN:
            return ""
        return "".join(c if isinstance(c, str) else c.visible_text for c in self.children)

    def elements(self):
        for child in self.children:
            if isinstance(child, Element):
                yield child
                yield from child.elements()

    def by_id(self, element_id: str) -> "Element":
        found = [e for e in self.elements() if e.attrs.get("id") == element_id]
        assert len(found) == 1, f"{len(found)} elements with id {element_id!r}"
        return found[0]

    def by_class(self, *names: str) -> list["Element"]:
        return [e for e in self.elements() if set(names) <= e.classes]

    def child_elements(self, *names: str) -> list["Element"]:
        return [c for c in self.children if isinstance(c, Element) and set(names) <= c.classes]


class _TreeBuilder(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = Element("document", {})
        self.open = self.root

    def handle_starttag(self, tag, attrs):
        element = Element(tag, {name: value or "" for name, value in attrs}, parent=self.open)
        self.open.children.append(element)
        if tag not in VOID:
            self.open = element

    def handle_endtag(self, tag):
        node = self.open
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.open = node.parent

    def handle_data(self, data):
        self.open.children.append(data)


def parse(html: str) -> Element:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root
