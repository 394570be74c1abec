"""Which configured targets the host writes, and why the others are not written.

Pure: a function of the config's ``[routing]`` table and ``[[targets]]``.

* ``routing.direct_dual = true``: the host writes every target.
* otherwise the host writes the targets in ``routing.primary``'s cloud
  (``local`` means file:// targets). A target in the other cloud is the
  replica: the archive's replication function copies to it (functions/, not
  run by this host). Any other target is not written at all.

Nothing is dropped silently: every target not written carries the reason and
the setting that would change it, and ``run --dry-run`` and ``status`` warn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipper.config import Config, TargetConfig

_REPLICA_OF = {"aws": "gcp", "gcp": "aws"}
_SCHEME = {"aws": "s3://", "gcp": "gs://", "local": "file://"}


@dataclass(frozen=True)
class Route:
    """One configured target and what the host does with it."""

    target: TargetConfig
    #: "primary" (written: in routing.primary's cloud), "direct" (written: direct_dual),
    #: "replica" (not written: the other cloud's function copies to it) or "unused"
    role: str
    written: bool
    #: why it is (not) written, and what to set to change it
    why: str

    @property
    def url(self) -> str:
        return self.target.url

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "role": self.role, "written": self.written, "why": self.why}


def routes(cfg: Config) -> list[Route]:
    """Every configured target, in config order, with its role."""
    out = []
    for t in cfg.targets:
        if cfg.direct_dual:
            out.append(Route(t, "direct", True, "routing.direct_dual = true: the host writes it"))
        elif t.cloud == cfg.primary:
            out.append(
                Route(t, "primary", True, f'routing.primary = "{cfg.primary}": the host writes it')
            )
        elif _REPLICA_OF.get(cfg.primary) == t.cloud:
            out.append(
                Route(
                    t,
                    "replica",
                    False,
                    f'routing.primary = "{cfg.primary}": the host writes only '
                    f"{_SCHEME[cfg.primary]} targets; {t.url} is left to the archive's "
                    "replication function. Set routing.direct_dual = true to write it from "
                    "this host.",
                )
            )
        else:
            out.append(
                Route(
                    t,
                    "unused",
                    False,
                    f'routing.primary = "{cfg.primary}": the host writes only '
                    f"{_SCHEME[cfg.primary]} targets and nothing replicates to {t.url}. Set "
                    f'routing.direct_dual = true, or routing.primary = "{t.cloud}", to write it.',
                )
            )
    return out


def write_targets(cfg: Config) -> tuple[TargetConfig, ...]:
    """The targets the host writes, in config order."""
    return tuple(r.target for r in routes(cfg) if r.written)


def warnings(cfg: Config) -> list[str]:
    """One line per configured target the host will not write."""
    return [
        f"target {r.url} is not written by this host: {r.why}" for r in routes(cfg) if not r.written
    ]
