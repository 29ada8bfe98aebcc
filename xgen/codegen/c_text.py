"""Text in generated C: the one way a string from a model file reaches C source.

Names, doc strings and other strings of a model file are untrusted. A node name holding `*/`
would end the comment it is written in and make the rest of the name part of the program: code
that runs on the user's machine. So generated C holds such text only inside a comment made here
(it never needs a model string as an identifier: C names are made from indices). The comment
keeps printable ASCII and spells every other byte of the text's UTF-8 as `\\xNN`:
- `*`: no `*/` can end the comment and no `/*` start another, whatever the text is joined with;
- `\\` and `?`: a backslash before a line end, or the trigraph `??/` that means one, splices lines;
- control characters (a newline would start a preprocessor line), NUL, DEL, and non-ASCII text,
  lone surrogates included (a Python str need not be valid Unicode).
An escape never ends in a backslash. Text past LIMIT characters is cut, with a marker saying
how much was left out.
"""

from __future__ import annotations

LIMIT = 400  # characters of escaped text in one comment: a node's line, not a 10 kB name
_KEPT = frozenset(chr(c) for c in range(0x20, 0x7F)) - set("*?\\")


def escape(text: str) -> str:
    """text made safe for the inside of a C block comment, at most LIMIT characters + a marker."""
    pieces, size = [], 0
    for i, char in enumerate(text):
        piece = char if char in _KEPT else _hex(char)
        if size + len(piece) > LIMIT:
            return "".join(pieces) + f" ... [{len(text) - i} more characters]"
        pieces.append(piece)
        size += len(piece)
    return "".join(pieces)


def comment(text: str) -> str:
    """A C block comment holding text, escaped."""
    return f"/* {escape(text)} */"


def _hex(char: str) -> str:
    # surrogatepass: a lone surrogate is written as the three bytes it would take, not an error
    return "".join(f"\\x{b:02x}" for b in char.encode("utf-8", "surrogatepass"))
