"""PagerDuty alerts: trigger when a threshold is crossed, resolve when it clears.

Conditions, each with its own dedup key (``binlog-shipper/TENANT/HOST/CONDITION``)
so a standing problem is one incident however many passes see it:

* ``queue_depth``  closed binlogs not committed >= ``alerts.queue_depth``
* ``archive_lag``  binlog_archive_lag_seconds >= ``alerts.archive_lag_seconds``
* ``expiry``       binlog_oldest_unarchived_expiry_seconds <= ``alerts.expiry_seconds``
* ``circuit/URL``  a target's circuit is open (``alerts.circuit_open``)

Which conditions are firing is kept in ``STATE/alerts.json`` so a restart
resolves a problem that cleared while the shipper was down, and does not page
again for one that is still there.

Delivery never blocks shipping: events go into a bounded queue that one
background thread sends, retrying with jittered exponential backoff (tenacity)
on connection errors, timeouts, 429 and 5xx. An event that cannot be queued
(full) or delivered (every attempt failed, or PagerDuty refused it) is counted
in ``binlog_shipper_alerts_dropped_total{reason}`` and logged as an event.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from shipper import events
from shipper.config import AlertConfig
from shipper.telemetry import Metrics

log = logging.getLogger(__name__)

QUEUE_SIZE = 256


class _Retry(Exception):
    """A delivery attempt that may succeed if made again."""


@dataclass(frozen=True)
class Condition:
    key: str
    firing: bool
    summary: str
    severity: str
    details: dict[str, Any]


class Sender:
    """Posts events to the Events API from one background thread."""

    def __init__(self, cfg: AlertConfig, metrics: Metrics, tenant: str) -> None:
        self.url = cfg.url
        self.timeout = cfg.timeout
        self.attempts = cfg.attempts
        self.metrics = metrics
        self.tenant = tenant
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_SIZE)
        self._thread = threading.Thread(target=self._run, name="alert-sender", daemon=True)
        self._thread.start()

    def send(self, event: dict[str, Any]) -> None:
        """Queue ``event``; never waits."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self._dropped("queue_full", event, "the alert queue is full")

    def close(self, timeout: float) -> None:
        """Deliver what is queued, for at most ``timeout`` seconds; the rest is lost with
        the process (the next start re-evaluates every condition from alerts.json)."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            try:
                self._deliver(event)
            except _Retry as e:
                self._dropped("undeliverable", event, f"{self.attempts} attempt(s) failed: {e}")
            except _Refused as e:
                self._dropped("refused", event, str(e))

    def _deliver(self, event: dict[str, Any]) -> None:
        body = json.dumps(event).encode()
        for attempt in Retrying(
            retry=retry_if_exception_type(_Retry),
            stop=stop_after_attempt(self.attempts),
            wait=wait_random_exponential(multiplier=0.5, max=30),
            reraise=True,
        ):
            with attempt:
                self._post(body)

    def _post(self, body: bytes) -> None:
        req = urllib.request.Request(
            self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as e:
            # 429: rate limited; 5xx: PagerDuty's side. Any other 4xx is our event or key.
            if e.code == 429 or e.code >= 500:
                raise _Retry(f"HTTP {e.code} from {self.url}") from e
            raise _Refused(f"{self.url} refused the event: HTTP {e.code}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            raise _Retry(f"{self.url}: {getattr(e, 'reason', e)}") from e

    def _dropped(self, reason: str, event: dict[str, Any], why: str) -> None:
        self.metrics.alerts_dropped.labels(reason=reason).inc()
        events.emit(
            "alert_dropped",
            f"alert {event.get('event_action')} {event.get('dedup_key')} not delivered: {why}",
            tenant=self.tenant,
            level=logging.ERROR,
            code=f"alert_{reason}",
            dedup_key=event.get("dedup_key"),
        )


class _Refused(Exception):
    """The Events API answered with a 4xx other than 429: retrying will not help."""


class Alerter:
    """Turns metric values and circuit changes into trigger/resolve events, once each."""

    def __init__(self, cfg: AlertConfig, tenant: str, metrics: Metrics, state_path: Path) -> None:
        self.cfg = cfg
        self.tenant = tenant
        self.routing_key = cfg.routing_key()
        self.source = socket.gethostname()
        self.state_path = state_path
        self.firing: dict[str, dict[str, Any]] = self._load()
        self.sender = Sender(cfg, metrics, tenant)
        self._lock = threading.Lock()

    def dedup_key(self, condition: str) -> str:
        return f"binlog-shipper/{self.tenant}/{self.source}/{condition}"

    def evaluate(self, metrics: Metrics) -> None:
        """Check the thresholds against ``metrics`` (after every pass)."""
        c = self.cfg
        if c.queue_depth:
            depth = metrics.queue_depth_value
            self.update(
                Condition(
                    "queue_depth",
                    depth >= c.queue_depth,
                    f"{self.tenant}: {depth} closed binlog(s) not archived "
                    f"(threshold {c.queue_depth})",
                    "error",
                    {"binlog_queue_depth": depth, "threshold": c.queue_depth},
                )
            )
        if c.archive_lag_seconds:
            lag = metrics.archive_lag()
            self.update(
                Condition(
                    "archive_lag",
                    lag >= c.archive_lag_seconds,  # NaN (nothing committed yet) is False
                    f"{self.tenant}: archive lag (RPO) {lag:.0f}s "
                    f"(threshold {c.archive_lag_seconds:.0f}s)",
                    "critical",
                    {"binlog_archive_lag_seconds": lag, "threshold": c.archive_lag_seconds},
                )
            )
        if c.expiry_seconds:
            left = metrics.expiry_left()
            self.update(
                Condition(
                    "expiry",
                    left <= c.expiry_seconds,
                    f"{self.tenant}: the server may purge a binlog not yet archived in "
                    f"{left:.0f}s (threshold {c.expiry_seconds:.0f}s)",
                    "critical",
                    {"binlog_oldest_unarchived_expiry_seconds": left},
                )
            )

    def circuit(self, target: str, state: str, error: str) -> None:
        """The circuit-change listener: an open circuit triggers, a closed one resolves."""
        if not self.cfg.circuit_open or state == "half-open":
            return  # a probe is not a recovery yet
        self.update(
            Condition(
                f"circuit/{target}",
                state == "open",
                f"{self.tenant}: circuit open for target {target}: {error}",
                "error",
                {"target": target, "error": error},
            )
        )

    def update(self, c: Condition) -> None:
        with self._lock:
            was = c.key in self.firing
            if c.firing == was:
                return  # standing problem or still fine: nothing new to say
            dedup = self.dedup_key(c.key)
            event: dict[str, Any] = {
                "routing_key": self.routing_key,
                "dedup_key": dedup,
                "event_action": "trigger" if c.firing else "resolve",
            }
            if c.firing:
                event["payload"] = {
                    "summary": c.summary[:1024],
                    "source": self.source,
                    "severity": c.severity,
                    "component": "binlog-shipper",
                    "group": self.tenant,
                    "class": c.key.split("/", 1)[0],
                    "custom_details": c.details,
                }
                self.firing[c.key] = {"dedup_key": dedup, "summary": c.summary}
            else:
                del self.firing[c.key]
            self._save()
        events.emit(
            "alert_triggered" if c.firing else "alert_resolved",
            c.summary if c.firing else f"resolved: {dedup}",
            tenant=self.tenant,
            level=logging.WARNING if c.firing else logging.INFO,
            target=c.details.get("target"),
            dedup_key=dedup,
        )
        self.sender.send(event)

    def close(self, timeout: float = 10.0) -> None:
        self.sender.close(timeout)

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            doc = json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            # losing it costs at most a repeated trigger (deduplicated by PagerDuty) or a
            # resolve not sent; shipping must not stop for it
            log.warning(
                "alert state %s unreadable (%s); starting with none firing", self.state_path, e
            )
            return {}
        firing = doc.get("firing") if isinstance(doc, dict) else None
        return dict(firing) if isinstance(firing, dict) else {}

    def _save(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        try:
            tmp.write_text(json.dumps({"firing": self.firing}, sort_keys=True))
            os.replace(tmp, self.state_path)
        except OSError as e:
            log.warning("alert state %s not saved: %s", self.state_path, e.strerror)
