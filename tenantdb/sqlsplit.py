"""Split a SQL script into its statements (for naming the one that failed).

Knows what can hide a semicolon: 'strings' (with '' inside), "identifiers",
$tag$ dollar quotes $tag$, -- line comments and /* block comments */.
"""

from __future__ import annotations

import re

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(sql: str) -> list[tuple[int, str]]:
    """(offset of the statement's first character, its text) for each statement."""
    out: list[tuple[int, str]] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c in "'\"":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif c == "$" and (m := _DOLLAR.match(sql, i)) and not (i > 0 and (sql[i - 1].isalnum() or sql[i - 1] == "_")):
            tag = m.group(0)
            j = sql.find(tag, m.end())
            i = n if j < 0 else j + len(tag)
        elif c == ";":
            text = sql[start:i + 1]
            if text.strip(" \t\r\n;"):
                out.append((start + len(text) - len(text.lstrip()), text.strip()))
            i += 1
            start = i
        else:
            i += 1
    rest = sql[start:]
    if rest.strip() and not all(line.strip().startswith("--") or not line.strip() for line in rest.splitlines()):
        out.append((start + len(rest) - len(rest.lstrip()), rest.strip()))
    return out
