"""PTX text -> entries: parameters, register and shared declarations, instructions, labels.

Only what the project's kernels write is accepted: one `.entry` per kernel with `.param`s,
`.reg` and `.shared` declarations (arrays or scalars; anywhere in the body; nested `{ }`
scopes are flattened, so a register name must be declared once), labels, and
`[@[!]%p] opcode operands;` statements, plus module-scope `.extern .shared` arrays (dynamic
shared memory: placed after an entry's static shared memory, sized at launch). Anything else
(`.local`, `.func` calls) raises `PtxError` naming the line."""

import re


class PtxError(Exception):
    """The PTX text uses something this interpreter does not parse or model."""


class Instr:
    """One statement: `guard` is (predicate register, negated) or None; `op` the dotted
    opcode; `args` the top-level operands as written; `line` its 1-based line in the file."""

    __slots__ = ("guard", "op", "args", "line", "text")

    def __init__(self, guard, op, args, line, text):
        self.guard, self.op, self.args, self.line, self.text = guard, op, args, line, text

    def __repr__(self):
        return f"line {self.line}: `{self.text}`"


class Entry:
    """One kernel: `params` [(name, type)], `regs` {name: type}, `shared` {name: (offset,
    size)} with `shared_size` bytes in all, `dynamic` [(name, align)] the module's dynamic
    shared arrays, `instrs` [Instr], `labels` {label: index}."""

    def __init__(self, name):
        self.name = name
        self.params = []
        self.regs = {}
        self.shared = {}
        self.shared_size = 0
        self.dynamic = []
        self.instrs = []
        self.labels = {}


_SIZES = {"b8": 1, "u8": 1, "s8": 1, "b16": 2, "u16": 2, "s16": 2, "f16": 2, "bf16": 2,
          "b32": 4, "u32": 4, "s32": 4, "f32": 4, "b64": 8, "u64": 8, "s64": 8, "f64": 8}


def _strip_comments(text):
    """Drops // and /* */ comments, keeping the newlines so line numbers stay right."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def split_operands(s):
    """Splits at the commas outside [ ] and { }."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def parse_module(text):
    """Every `.entry` of a PTX module, as {name: Entry}."""
    clean = _strip_comments(text)
    if re.search(r"\.func\b", clean):
        raise PtxError(".func (device functions) is not modelled")
    dynamic = [(name, int(align or 16)) for align, name in re.findall(
        r"\.extern\s+\.shared\s+(?:\.align\s+(\d+)\s+)?\.\w+\s+(\w+)\[\]", clean)]
    entries = {}
    for m in re.finditer(r"\.entry\s+(\w+)\s*\(", clean):
        entry = Entry(m.group(1))
        entry.dynamic = dynamic
        close = clean.index(")", m.end())
        entry.params = [(name, ty) for ty, name in
                        re.findall(r"\.param\s+\.(\w+)\s+(\w+)", clean[m.end():close])]
        open_brace = clean.index("{", close)
        depth, i = 0, open_brace
        while True:
            if clean[i] == "{":
                depth += 1
            elif clean[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        first_line = clean.count("\n", 0, open_brace) + 1
        _parse_body(entry, clean[open_brace + 1:i], first_line)
        entries[entry.name] = entry
    if not entries:
        raise PtxError("no .entry in the module")
    return entries


def _parse_body(entry, body, first_line):
    line = first_line
    for raw in body.split(";"):
        line += raw.count("\n")
        stmt_line = line  # the line of the closing `;`
        stmt = raw.strip()
        while True:
            if stmt[:1] in ("{", "}"):
                stmt = stmt[1:].strip()
                continue
            m = re.match(r"^([A-Za-z_$][\w$]*):", stmt)
            if m:
                entry.labels[m.group(1)] = len(entry.instrs)
                stmt = stmt[m.end():].strip()
                continue
            break
        if not stmt:
            continue
        text = " ".join(stmt.split())
        if stmt.startswith("."):
            _directive(entry, text, stmt_line)
            continue
        guard = None
        m = re.match(r"^@(!?)(%[\w.]+)\s+", stmt)
        if m:
            guard = (m.group(2), m.group(1) == "!")
            stmt = stmt[m.end():]
        parts = stmt.split(None, 1)
        args = split_operands(parts[1]) if len(parts) > 1 else []
        entry.instrs.append(Instr(guard, parts[0], args, stmt_line, text))


def _directive(entry, text, line):
    m = re.match(r"^\.reg\s+\.(\w+)\s+(.*)$", text)
    if m:
        ty = m.group(1)
        for name in m.group(2).split(","):
            name = name.strip()
            many = re.match(r"^(%\w+)<(\d+)>$", name)
            names = [f"{many.group(1)}{k}" for k in range(int(many.group(2)))] if many else [name]
            for n in names:
                if n in entry.regs:
                    raise PtxError(f"line {line}: register {n} declared twice "
                                   "(scopes are flattened)")
                entry.regs[n] = ty
        return
    m = re.match(r"^\.shared\s+(?:\.align\s+(\d+)\s+)?\.(\w+)\s+(\w+)(?:\[(\d+)\])?$", text)
    if m:  # an array, or a scalar (one element)
        align = int(m.group(1) or _SIZES[m.group(2)])
        size = _SIZES[m.group(2)] * int(m.group(4) or 1)
        offset = (entry.shared_size + align - 1) // align * align
        entry.shared[m.group(3)] = (offset, size)
        entry.shared_size = offset + size
        return
    if text.startswith((".pragma", ".loc", ".file")):
        return
    raise PtxError(f"line {line}: directive not modelled: `{text}`")
