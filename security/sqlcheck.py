"""Static check that SQL text is never built from runtime values: `python -m security.sqlcheck api otp`.

Every string that reaches `text(...)`, `.execute(...)`, `.executemany(...)` or
`.exec_driver_sql(...)` must be *static*: made only of string literals, module-level names and
local variables that are themselves only ever assigned (or appended, extended, +=) static
strings, combined with f-strings, `+`, `str.join` and `str.format`. Values travel as bind
parameters. A function parameter, an attribute or any other call makes the SQL dynamic and is
reported, with its line, so a reviewer decides (and the code is rewritten to bind it).

Module-level names (constants, imports) count as static: they are computed at import time,
before any request exists, unless a function rebinds them with `global`. A helper that takes
SQL as an argument declares it `LiteralString` (PEP 675); the parameter is then static inside
it, and every call to the helper in the module must pass static SQL in that position.

Conservative by design: it proves the absence of injection for the patterns the code base
uses (optional WHERE fragments chosen by which filters are present, a table picked from a
constant mapping) and flags everything it cannot prove. psycopg's `sql.SQL(...).format(...)`
composition (identifiers quoted by the driver) and SQLAlchemy Core constructs are accepted.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SINK_METHODS: Final = frozenset({"execute", "executemany", "exec_driver_sql"})
CORE_BUILDERS: Final = frozenset({"select", "insert", "update", "delete", "union", "union_all"})
# Methods that give static output for static input (strings and constant containers).
STR_METHODS: Final = frozenset({"join", "format", "strip", "upper", "lower", "items", "values", "keys"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass
class Scope:
    parent: Scope | None
    params: set[str] = field(default_factory=set)
    values: dict[str, list[ast.expr]] = field(default_factory=dict)
    # Module scope only: names rebound in functions with `global` (not import-time constants).
    rebound: set[str] = field(default_factory=set)


def _is_literal_string(annotation: ast.expr | None) -> bool:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        return annotation.value.rsplit(".", 1)[-1] == "LiteralString"
    if isinstance(annotation, ast.Attribute):
        return annotation.attr == "LiteralString"
    return isinstance(annotation, ast.Name) and annotation.id == "LiteralString"


def _literal_string_params(tree: ast.Module) -> dict[str, dict[str, int]]:
    """function name -> {parameter name: position} for parameters annotated LiteralString."""
    found: dict[str, dict[str, int]] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = [*node.args.posonlyargs, *node.args.args]
            params = {a.arg: i for i, a in enumerate(positional) if _is_literal_string(a.annotation)}
            params |= {a.arg: -1 for a in node.args.kwonlyargs if _is_literal_string(a.annotation)}
            if params:
                found[node.name] = params
    return found


def _bind(scope: Scope, target: ast.expr, value: ast.expr) -> None:
    if isinstance(target, ast.Name):
        scope.values.setdefault(target.id, []).append(value)
    elif isinstance(target, (ast.Tuple, ast.List)):
        # Unpacking: each name gets "an element of value" (static iff value is).
        for element in target.elts:
            _bind(scope, element, value)


def _collect(scope: Scope, body: list[ast.stmt]) -> None:
    """Record every value a name of this scope is given (nested functions have their own scope)."""
    for node in _walk_same_scope(body):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                _bind(scope, target, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            _bind(scope, node.target, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            _bind(scope, node.target, node.iter)
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            _bind(scope, node.optional_vars, node.context_expr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.attr in ("append", "extend", "insert", "add")
        ):
            for arg in node.args[-1:]:
                scope.values.setdefault(node.func.value.id, []).append(arg)


def _walk_same_scope(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of `body`; a nested function or class is yielded but not entered."""
    stack: list[ast.AST] = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


class Checker:
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.findings: list[Finding] = []
        self._busy: set[tuple[int, str]] = set()
        self._sql_helpers = _literal_string_params(tree)
        module = Scope(None)
        _collect(module, tree.body)
        module.rebound = {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
        self._visit(tree.body, module)

    # -- walking ---------------------------------------------------------------------------

    def _visit(self, body: list[ast.stmt], scope: Scope) -> None:
        for node in _walk_same_scope(body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._function(node, scope)
            elif isinstance(node, ast.ClassDef):
                self._visit(node.body, scope)
            elif isinstance(node, ast.Lambda):
                self._lambda(node, scope)
            elif isinstance(node, ast.Call):
                self._call(node, scope)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, parent: Scope) -> None:
        scope = Scope(parent)
        args = node.args
        for a in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if a is not None and not _is_literal_string(a.annotation):
                scope.params.add(a.arg)
        _collect(scope, node.body)
        self._visit(node.body, scope)

    def _lambda(self, node: ast.Lambda, parent: Scope) -> None:
        scope = Scope(parent, params={a.arg for a in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]})
        for inner in ast.walk(node.body):
            if isinstance(inner, ast.Call):
                self._call(inner, scope)

    def _call(self, node: ast.Call, scope: Scope) -> None:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if isinstance(func, ast.Name) and func.id in self._sql_helpers:
            for param, position in self._sql_helpers[func.id].items():
                passed = [k.value for k in node.keywords if k.arg == param]
                if 0 <= position < len(node.args):
                    passed.append(node.args[position])
                for arg in passed:
                    self._require_static(arg, scope, f"{func.id}({param}=...)")
        if name == "text" and node.args:
            self._require_static(node.args[0], scope, "text()")
        elif isinstance(func, ast.Attribute) and name in SINK_METHODS and node.args:
            sql = node.args[0]
            if isinstance(sql, ast.Call) and self._is_safe_builder(sql, scope):
                return
            self._require_static(sql, scope, f".{name}()")

    def _require_static(self, expr: ast.expr, scope: Scope, sink: str) -> None:
        if not self.static(expr, scope):
            self.findings.append(Finding(self.path, expr.lineno, f"SQL passed to {sink} is built from runtime values"))

    def _is_safe_builder(self, call: ast.Call, scope: Scope) -> bool:
        func = call.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name == "text":
            return True  # checked where the text() call itself is visited
        if name in CORE_BUILDERS:
            return True
        # psycopg: sql.SQL("... {} ...").format(sql.Identifier(x)) quotes what it inserts.
        return (
            name == "format"
            and isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Call)
            and isinstance(func.value.func, ast.Attribute)
            and func.value.func.attr == "SQL"
            and all(self.static(a, scope) for a in func.value.args)
        )

    # -- what is static -------------------------------------------------------------------

    def static(self, expr: ast.expr, scope: Scope) -> bool:
        if isinstance(expr, ast.Constant):
            return True
        if isinstance(expr, ast.JoinedStr):
            return all(self.static(v, scope) for v in expr.values)
        if isinstance(expr, ast.FormattedValue):
            return self.static(expr.value, scope)
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, (ast.Add, ast.Mod)):
            return self.static(expr.left, scope) and self.static(expr.right, scope)
        if isinstance(expr, (ast.List, ast.Tuple, ast.Set)):
            return all(self.static(e, scope) for e in expr.elts)
        if isinstance(expr, ast.Dict):
            return all(self.static(v, scope) for v in expr.values)
        if isinstance(expr, ast.IfExp):
            return self.static(expr.body, scope) and self.static(expr.orelse, scope)
        if isinstance(expr, ast.Subscript):
            return self.static(expr.value, scope)
        if isinstance(expr, ast.Starred):
            return self.static(expr.value, scope)
        if isinstance(expr, (ast.ListComp, ast.GeneratorExp, ast.SetComp)):
            return self._comprehension(expr, scope)
        if isinstance(expr, ast.Call):
            return self._static_call(expr, scope)
        if isinstance(expr, ast.Name):
            return self._static_name(expr.id, scope)
        return False

    def _static_call(self, call: ast.Call, scope: Scope) -> bool:
        func = call.func
        if isinstance(func, ast.Name) and func.id == "text":
            return all(self.static(a, scope) for a in call.args)
        if isinstance(func, ast.Attribute) and func.attr in STR_METHODS:
            args = [*call.args, *(k.value for k in call.keywords)]
            return self.static(func.value, scope) and all(self.static(a, scope) for a in args)
        return False

    def _comprehension(self, expr: ast.ListComp | ast.GeneratorExp | ast.SetComp, scope: Scope) -> bool:
        inner = Scope(scope)
        for generator in expr.generators:
            if not self.static(generator.iter, inner):
                return False
            _bind(inner, generator.target, generator.iter)
        return self.static(expr.elt, inner)

    def _static_name(self, name: str, scope: Scope | None) -> bool:
        while scope is not None:
            if name in scope.params:
                return False  # a function argument: request input, as far as we can know
            if scope.parent is None and name not in scope.rebound:
                return True  # module level: computed at import time, before any request
            if name in scope.values:
                key = (id(scope), name)
                if key in self._busy:
                    return True  # `where += "..."`: decided by the name's other values
                self._busy.add(key)
                try:
                    return all(self.static(v, scope) for v in scope.values[name])
                finally:
                    self._busy.discard(key)
            scope = scope.parent
        return False


def check_source(source: str, path: str = "<source>") -> list[Finding]:
    return Checker(path, ast.parse(source, filename=path)).findings


def check_paths(roots: list[Path]) -> list[Finding]:
    findings: list[Finding] = []
    for root in roots:
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for file in files:
            findings.extend(check_source(file.read_text(), str(file)))
    return findings


def main(argv: list[str] | None = None) -> int:
    roots = [Path(a) for a in (argv if argv is not None else sys.argv[1:])] or [Path("api")]
    findings = check_paths(roots)
    for finding in findings:
        print(finding)
    return 1 if findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
