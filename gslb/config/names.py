"""Domain-name helpers shared by the loaders: normalising names relative to an origin."""

from __future__ import annotations

from gslb.config.yamlsrc import short


class NameError_(ValueError):
    """A domain name that cannot be used (too long, bad label, outside the origin)."""


def absolute(name: str, origin: str) -> str:
    """Lower-case absolute form of `name`: "@" is the origin, a trailing dot means already absolute.

    :raises NameError_: when a label is empty or too long, or the name is too long.
    """
    name = name.strip()
    if name == "@":
        full = origin
    elif name.endswith("."):
        full = name
    else:
        full = f"{name}.{origin}" if origin != "." else f"{name}."
    full = full.lower()
    if full != ".":
        labels = full[:-1].split(".")
        for label in labels:
            if not label:
                raise NameError_(f"empty label in name {short(name)}")
            if len(label) > 63:
                raise NameError_(f"label {short(label, 24)} longer than 63 bytes in {short(name)}")
        if sum(len(label) + 1 for label in labels) + 1 > 255:
            raise NameError_(f"name {short(name)} longer than 255 bytes")
    return full


def is_within(name: str, origin: str) -> bool:
    """True when `name` is `origin` or below it (both absolute, lower case)."""
    return origin == "." or name == origin or name.endswith("." + origin)


def parent(name: str) -> str:
    """The name one label up ("a.b.c." -> "b.c."; the root stays the root)."""
    if name == ".":
        return name
    rest = name.split(".", 1)[1]
    return rest or "."
