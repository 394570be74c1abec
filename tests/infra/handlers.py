"""Entry points named in Terraform, checked against functions/ with ast.

The Lambdas name a handler as ``path/to/module.function`` relative to the
package root (``functions/aws/verify_replicate.handler``); the Cloud Function
names an ``entry_point`` in ``main.py`` of its source directory (built from
``functions/gcp/``). Nothing is imported: a handler module may import SDKs the
test environment lacks, and the check is about names and signatures.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.infra.tftree import Module

GCP_SOURCE = Path("functions/gcp/main.py")


@dataclass(frozen=True)
class EntryPoint:
    kind: str  # "lambda" or "cloudfunction"
    value: str  # as written in Terraform
    where: str  # module path and resource address

    @property
    def source(self) -> Path:
        if self.kind == "lambda":
            return Path(self.value.rsplit(".", 1)[0] + ".py")
        return GCP_SOURCE

    @property
    def function(self) -> str:
        return self.value.rsplit(".", 1)[1] if self.kind == "lambda" else self.value


def entry_points(modules: list[Module]) -> list[EntryPoint]:
    found = []
    for m in modules:
        for rtype, name, body, _f in m.resources:
            if rtype == "aws_lambda_function":
                found.append(EntryPoint("lambda", str(body["handler"]), f"{m.path}:{rtype}.{name}"))
            elif rtype == "google_cloudfunctions2_function":
                for build in body.get("build_config", []):
                    found.append(
                        EntryPoint(
                            "cloudfunction", str(build["entry_point"]), f"{m.path}:{rtype}.{name}"
                        )
                    )
    return found


def _decorator_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    names = set()
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        names.add(ast.unparse(target))
    return names


def _required_positional(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = fn.args.posonlyargs + fn.args.args
    n_required = len(args) - len(fn.args.defaults)
    return [a.arg for a in args[:n_required]]


def entry_point_problems(root: Path, ep: EntryPoint) -> list[str]:
    """What is wrong with ``ep`` under ``root`` (the repository), or []."""
    path = root / ep.source
    if not path.is_file():
        return [f"{ep.where}: {ep.value!r} names {ep.source}, which does not exist"]
    tree = ast.parse(path.read_text(), filename=str(path))
    fns = [
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == ep.function
    ]
    if not fns:
        return [f"{ep.where}: {ep.source} has no top-level function {ep.function}()"]
    fn = fns[-1]
    required = _required_positional(fn)
    kwonly_required = [
        a.arg for a, d in zip(fn.args.kwonlyargs, fn.args.kw_defaults, strict=True) if d is None
    ]
    problems = []
    if ep.kind == "lambda":
        if len(required) != 2 or kwonly_required:
            problems.append(
                f"{ep.where}: {ep.source}:{fn.lineno} {ep.function}({', '.join(required)}) "
                "must take exactly (event, context)"
            )
        if isinstance(fn, ast.AsyncFunctionDef):
            problems.append(f"{ep.where}: Lambda's Python runtime cannot call async {ep.function}")
    else:
        if len(required) != 1 or kwonly_required:
            problems.append(
                f"{ep.where}: {ep.source}:{fn.lineno} {ep.function}({', '.join(required)}) "
                "must take exactly (cloud_event)"
            )
        # Without the decorator functions-framework serves it as an HTTP
        # function, and Eventarc's CloudEvents would arrive as a Flask request.
        if not _decorator_names(fn) & {"functions_framework.cloud_event", "cloud_event"}:
            problems.append(
                f"{ep.where}: {ep.source}:{fn.lineno} {ep.function} is not decorated with "
                "@functions_framework.cloud_event"
            )
    return problems
