"""Read the repository's Terraform with python-hcl2, as plain values.

No Terraform binary or provider can be downloaded where the suite runs, so
these readers are what checks the configuration: every ``.tf`` file parses,
module sources are local and resolve, and module calls pass only variables
the module declares.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIRS = (ROOT / "infra" / "terraform", ROOT / "samplerepo")

# Plain values: strings without their HCL quotes, blocks without markers,
# no comments. Expressions stay as "${...}" strings.
OPTIONS = hcl2.SerializationOptions(
    with_comments=False, strip_string_quotes=True, explicit_blocks=False
)


def tf_files() -> list[Path]:
    return sorted(
        p
        for d in TERRAFORM_DIRS
        for p in d.rglob("*.tf")
        if ".terraform" not in p.relative_to(d).parts
    )


@cache
def parse_file(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(), serialization_options=OPTIONS)


def blocks(doc: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """``variable "x" {...}`` -> ("x", {...}); hcl2 lists one dict per block."""
    for entry in doc.get(kind, []):
        yield from entry.items()


def resources(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for entry in doc.get("resource", []):
        for rtype, named in entry.items():
            for name, body in named.items():
                yield rtype, name, body


@dataclass
class Module:
    """One Terraform module: a directory of .tf files."""

    path: Path
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    resources: list[tuple[str, str, dict[str, Any], Path]] = field(default_factory=list)
    docs: list[tuple[Path, dict[str, Any]]] = field(default_factory=list)

    @property
    def is_root(self) -> bool:
        return self.path.is_relative_to(ROOT / "samplerepo")


def load_module(path: Path) -> Module:
    m = Module(path=path)
    for f in sorted(path.glob("*.tf")):
        doc = parse_file(f)
        m.docs.append((f, doc))
        m.variables.update(blocks(doc, "variable"))
        m.outputs.update(blocks(doc, "output"))
        m.calls.update(blocks(doc, "module"))
        m.resources.extend((t, n, b, f) for t, n, b in resources(doc))
    return m


def modules() -> list[Module]:
    return [load_module(d) for d in sorted({p.parent for p in tf_files()})]


# Meta-arguments of a module block: not variables of the module.
MODULE_META = {"source", "version", "providers", "count", "for_each", "depends_on"}


def _rel(p: Path) -> str:
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def source_problems(module: Module) -> list[str]:
    """Module calls whose source is not a local path to a directory of .tf files."""
    problems = []
    for name, call in module.calls.items():
        source = str(call.get("source", ""))
        if not source.startswith(("./", "../")):
            problems.append(f'{_rel(module.path)}: module "{name}" source {source!r} is not local')
            continue
        target = (module.path / source).resolve()
        if not (target.is_dir() and any(target.glob("*.tf"))):
            problems.append(
                f'{_rel(module.path)}: module "{name}" source {source} does not resolve to a module'
            )
    return problems


def call_problems(module: Module) -> list[str]:
    """Module calls that pass a variable the module does not declare, or omit a required one."""
    problems = []
    for name, call in module.calls.items():
        target = (module.path / str(call.get("source", ""))).resolve()
        if not target.is_dir():
            continue  # reported by source_problems
        callee = load_module(target)
        passed = set(call) - MODULE_META
        for var in sorted(passed - set(callee.variables)):
            problems.append(
                f'{_rel(module.path)}: module "{name}" passes {var}, '
                f"which {_rel(callee.path)} does not declare"
            )
        required = {v for v, body in callee.variables.items() if "default" not in body}
        for var in sorted(required - passed):
            problems.append(f'{_rel(module.path)}: module "{name}" does not pass required {var}')
    return problems
