"""Counters for /metrics, rendered in the Prometheus text exposition format."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    def __init__(self) -> None:
        self.connections_total = 0
        self.frames_sent: Counter[int] = Counter()  # by frame code
        self.raw_frames_sent: Counter[str] = Counter()  # frames that are not JSON: "text", "binary"
        self.frames_dropped: Counter[str] = Counter()  # frames not delivered, by reason (e.g. "stall")
        self.pump_errors = 0  # pump steps that raised (the pump goes on)
        self.connection_errors = 0  # connections dropped because writing to them raised
        self.pushes_skipped = 0  # depth/kline grid points skipped when the pump fell far behind
        self.socket_writes = 0  # writes of frames to sockets: frames_sent / socket_writes is the batching
        self.pump_ticks_missed = 0  # pump ticks that passed while a step overran (the cadence slipped)
        self.timer_wakeups = 0  # heartbeat-deadline timers that fired (a spinning timer shows here)
        self.frames_received = 0
        self.errors_sent: Counter[int] = Counter()  # error frames by code
        self.handshakes_refused: Counter[int] = Counter()  # by HTTP status
        self.rest_requests: Counter[int] = Counter()  # by HTTP status
        self.slow_consumers_dropped = 0
        self.contract_violations = 0
        self.faults_applied: Counter[str] = Counter()
        # Gauges are read at render time from the live server, so they can never drift from the truth.
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def render(self) -> str:
        lines: list[str] = []

        def counter(name: str, help_text: str, values: int | dict, label: str | None = None) -> None:
            lines.append(f"# HELP infoway_{name} {help_text}")
            lines.append(f"# TYPE infoway_{name} counter")
            if not isinstance(values, dict):
                lines.append(f"infoway_{name} {values}")
            else:
                for k, v in sorted(values.items()):
                    lines.append(f'infoway_{name}{{{label}="{k}"}} {v}')

        for name, (help_text, read) in self.gauges.items():
            lines.append(f"# HELP infoway_{name} {help_text}")
            lines.append(f"# TYPE infoway_{name} gauge")
            lines.append(f"infoway_{name} {read()}")
        counter("connections_total", "WebSocket connections accepted.", self.connections_total)
        counter("frames_sent_total", "Frames sent to clients, by code.", self.frames_sent, "code")
        counter(
            "raw_frames_sent_total",
            "Non-JSON frames sent (banner, malformed faults).",
            self.raw_frames_sent,
            "kind",
        )
        counter(
            "frames_dropped_total",
            "Frames not delivered, by reason (counted, never silent).",
            self.frames_dropped,
            "reason",
        )
        counter("frames_received_total", "Frames received from clients.", self.frames_received)
        counter("errors_sent_total", "Error frames sent, by code.", self.errors_sent, "code")
        counter(
            "handshakes_refused_total",
            "Handshakes refused, by HTTP status.",
            self.handshakes_refused,
            "status",
        )
        counter("rest_requests_total", "REST requests, by HTTP status.", self.rest_requests, "status")
        counter(
            "slow_consumers_dropped_total",
            "Connections dropped because their send buffer hit its bound.",
            self.slow_consumers_dropped,
        )
        counter(
            "contract_violations_total",
            "Frames the server tried to send that broke the schemas (strict mode).",
            self.contract_violations,
        )
        counter("faults_applied_total", "Faults applied, by kind.", self.faults_applied, "kind")
        counter("pump_errors_total", "Market pump steps that raised; the pump went on.", self.pump_errors)
        counter(
            "connection_errors_total",
            "Connections dropped because writing to them raised; others went on.",
            self.connection_errors,
        )
        counter(
            "pushes_skipped_total",
            "Depth/kline push times skipped because the pump fell far behind.",
            self.pushes_skipped,
        )
        counter("timer_wakeups_total", "Heartbeat-deadline timers fired.", self.timer_wakeups)
        counter(
            "socket_writes_total",
            "Writes of frames to sockets (one per connection per pump step with frames for it).",
            self.socket_writes,
        )
        counter(
            "pump_ticks_missed_total",
            "Pump ticks missed because a step overran its interval (pushes later, in bigger writes).",
            self.pump_ticks_missed,
        )
        return "\n".join(lines) + "\n"
