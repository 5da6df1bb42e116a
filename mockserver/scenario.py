"""Scenario files: faults on a timeline, played by the same engine as the API and the control channel."""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .faults import Fault


class FaultSink(Protocol):
    """What playing a scenario needs: a way to apply faults (the server's FaultEngine)."""

    def apply_now(self, fault: Fault) -> dict[str, Any]: ...


log = logging.getLogger("infoway.mock")
SCENARIO_DIR = Path(__file__).with_name("scenarios")


@dataclass(frozen=True)
class Step:
    at: float
    fault: Fault
    every: float | None = None
    until: float | None = None
    times: int | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    duration: float
    steps: tuple[Step, ...]
    server: dict[str, Any] = field(default_factory=dict)

    def schedule(self, scale: float = 1.0) -> list[tuple[float, int, Fault]]:
        """Every firing as (seconds from start, order, fault), scaled, sorted."""
        out: list[tuple[float, int, Fault]] = []
        order = 0
        for step in self.steps:
            end = min(step.until if step.until is not None else self.duration, self.duration)
            t, n = step.at, 0
            while t <= end and (step.times is None or n < step.times):
                heapq.heappush(out, (t * scale, order, _scaled(step.fault, scale)))
                order += 1
                n += 1
                if not step.every:
                    break
                t += step.every
        return [heapq.heappop(out) for _ in range(len(out))]


def _scaled(fault: Fault, scale: float) -> Fault:
    if scale == 1.0:
        return fault
    raw = fault.to_dict()
    for name in ("seconds", "delay", "jitter"):
        if raw.get(name) is not None:
            raw[name] = raw[name] * scale
    return Fault.from_dict(raw)


def parse(raw: Any) -> Scenario:
    """Build a scenario from a document already checked against schemas/json/scenario.schema.json; each
    fault is checked by the fault registry's schema, the same one the API and control channel use."""
    steps = tuple(
        Step(
            at=float(s.get("at", 0)),
            fault=Fault.from_dict(s["fault"], at=f"$.timeline[{i}].fault"),
            every=s.get("every"),
            until=s.get("until"),
            times=s.get("times"),
        )
        for i, s in enumerate(raw["timeline"])
    )
    return Scenario(
        raw["name"], raw.get("description", ""), float(raw["duration"]), steps, raw.get("server", {})
    )


def load(name_or_path: str | Path) -> Scenario:
    """Load a shipped scenario by name, or a file; the document is validated against the scenario schema."""
    from infoway_mock import schemas

    path = Path(name_or_path)
    if not path.exists():
        shipped = SCENARIO_DIR / f"{name_or_path}.yaml"
        if not shipped.exists():
            raise ValueError(
                f"no scenario file or shipped scenario named {name_or_path!r} (see `infoway-mock scenarios`)"
            )
        path = shipped
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        raw = yaml.safe_load(text)
    else:
        raw = json.loads(text)
    schemas.validate_document(raw, "scenario.schema.json", source=str(path))
    try:
        return parse(raw)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: {e}") from None


def shipped() -> list[Scenario]:
    return [load(p) for p in sorted(SCENARIO_DIR.glob("*.yaml"))]


async def play(faults: FaultSink, scenario: Scenario, scale: float = 1.0) -> None:
    """Apply each fault at its time; returns when the scenario's duration has elapsed. A fault that
    cannot be applied (a connection gone by then) is logged and the timeline goes on."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    log.info(
        "scenario %s: %d fault(s) over %.1fs", scenario.name, len(scenario.steps), scenario.duration * scale
    )
    for at, _, fault in scenario.schedule(scale):
        delay = start + at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the timeline itself: faults fire at their scheduled times
        try:
            result = faults.apply_now(fault)
        except ValueError as e:
            log.warning("scenario %s: t=%.1fs %s not applied: %s", scenario.name, at, fault.describe(), e)
            continue
        log.info(
            "scenario %s: t=%.1fs %s (%d connection(s))",
            scenario.name,
            at,
            fault.describe(),
            len(result["connections"]),
        )
    rest = start + scenario.duration * scale - loop.time()
    if rest > 0:
        await asyncio.sleep(rest)
    log.info("scenario %s: done", scenario.name)
