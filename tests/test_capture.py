"""The capture format: written, read back, bounded, masked, and checked by `python -m ... schemas check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from infoway_mock.mockserver.fanout import text_frame
from infoway_mock.mockserver.outbox import binary_frame
from infoway_mock.schemas import load
from infoway_mock.schemas.capture import CaptureError, CaptureWriter, read
from infoway_mock.schemas.check import check_lines
from infoway_mock.schemas.masking import mask_query, mask_target

TRADE = load("server/trade-push.json")["examples"][0]
SUBSCRIBE = load("client/subscribe-trades.json")["examples"][0]
WELCOME = {"code": 200, "msg": "ws connect success"}


def _capture(path: Path, **kw: object) -> CaptureWriter:
    return CaptureWriter(
        path, source="proxy", tool="test", upstream="ws://127.0.0.1:1/ws?apikey=secret-key", **kw
    )


def test_a_capture_round_trips_and_keeps_frames_exact(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    w = _capture(p)
    w.event(
        "open",
        conn=1,
        path="/ws",
        query=mask_query({"business": "crypto", "apikey": "secret-key"}),
        status=101,
    )
    odd = '{"code":10002,  "data":{"s":"BTCUSDT","p":"1.10"}}'  # spacing and digits the recorder must keep
    w.wires(1, "recv", [text_frame(orjson.dumps(WELCOME)), text_frame(odd.encode())])
    w.message(1, "send", json.dumps(SUBSCRIBE))
    w.wires(1, "recv", [binary_frame(b"\x00\xff")])
    w.event("close", conn=1, by="server", code=1008, reason="Websocket heartbeat timeout", error=513)
    w.close()
    cap = read(p)
    assert cap.header["source"] == "proxy" and cap.header["version"] == 1
    frames = [e for e in cap.events if e["ev"] == "frame"]
    assert frames[1]["text"] == odd
    assert frames[2] == {**frames[2], "dir": "send", "text": json.dumps(SUBSCRIBE)}
    assert frames[3]["binary"] == "AP8="
    assert cap.events[-1]["ev"] == "end" and cap.events[-1]["frames"] == {"send": 1, "recv": 3}
    ts = [e["t"] for e in cap.events]
    assert ts == sorted(ts)
    assert "secret-key" not in p.read_text()


def test_text_is_kept_exactly_whichever_way_a_batch_is_escaped(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    w = _capture(p)
    tricky = [
        '{"traceId":"a\\"b","code":506,"msg":"Param error：\\u00e9 \\\\ é"}',  # escapes, non-ASCII
        '{"code":10002,"data":{"s":"\\u2028"}}',
    ]
    pretty = '{\n  "code": 200,\n\t"msg": "ws connect success"\n}'  # control characters: the careful path
    w.wires(1, "recv", [text_frame(t.encode()) for t in tricky])
    w.wires(1, "recv", [text_frame(t.encode()) for t in [*tricky, pretty]])
    w.wires(1, "recv", [text_frame(b"x" * 70000), text_frame(b"\xff\xfe")])  # 64-bit length; bad UTF-8
    w.close()
    frames = [e for e in read(p).events if e["ev"] == "frame"]
    assert [f.get("text") for f in frames[:5]] == [*tricky, *tricky, pretty]
    assert frames[5]["text"] == "x" * 70000 and frames[6]["binary"] == "//4="
    assert read(p).events[-1]["frames"]["recv"] == 7


def test_keys_are_masked_in_queries_and_targets() -> None:
    assert mask_query({"apikey": "abcdefgh", "business": "crypto"}) == {
        "apikey": "ab****gh",
        "business": "crypto",
    }
    assert (
        mask_target("/crypto/batch_trade/BTCUSDT?apiKey=abcdefgh")
        == "/crypto/batch_trade/BTCUSDT?apiKey=ab****gh"
    )
    assert mask_target("/ws") == "/ws"


def test_the_bound_counts_what_it_leaves_out(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    w = _capture(p, max_bytes=600)
    for _ in range(20):
        w.wires(1, "recv", [text_frame(orjson.dumps(TRADE))])
    w.close()
    cap = read(p)
    end = cap.events[-1]
    assert end["unrecorded"] > 0
    assert len([e for e in cap.events if e["ev"] == "frame"]) + end["unrecorded"] == 20


def test_read_refuses_what_is_not_a_capture(tmp_path: Path) -> None:
    p = tmp_path / "x.jsonl"
    p.write_text(json.dumps(TRADE) + "\n")
    with pytest.raises(CaptureError, match="not a capture"):
        read(p)
    w = _capture(p)
    w.close()
    p.write_text(p.read_text() + '{"ev":"close","t":1,"conn":1,"by":"nobody","code":1000}\n')
    with pytest.raises(CaptureError, match=r"line 3: \$\.by"):
        read(p)


def _lines(*events: dict) -> list[str]:
    header = {
        "capture": "infoway",
        "version": 1,
        "tool": "t",
        "source": "proxy",
        "started": "2026-08-15T14:00:00Z",
        "started_ms": 1786802400000,
    }
    return [json.dumps(header), *(json.dumps(e) for e in events)]


def _frame(direction: str, obj: object, conn: int = 1, t: float = 0.1) -> dict:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return {"ev": "frame", "t": t, "conn": conn, "dir": direction, "text": text}


def test_check_validates_each_line_and_each_frame_by_its_direction_and_socket() -> None:
    bad_trade = {"code": 10002, "data": {**TRADE["data"], "p": 63039}}
    news_sub = {"code": 10020, "trace": "n1", "data": {"lang": "en"}}
    report = check_lines(
        _lines(
            {"ev": "open", "t": 0, "conn": 1, "path": "/ws", "status": 101},
            _frame("recv", WELCOME),
            _frame("send", SUBSCRIBE),
            _frame("recv", TRADE),
            _frame("recv", bad_trade),  # line 6
            _frame("recv", "You have permission to subscribe to all market data"),
            {"ev": "open", "t": 0.2, "conn": 2, "path": "/news", "status": 101},
            _frame("send", news_sub, conn=2),  # a news request: valid on /news only
            _frame("send", news_sub, conn=1),  # line 10: not on /ws
            {"ev": "frame", "t": 1, "conn": 1, "dir": "recv", "binary": "AP8="},  # line 11
            {"ev": "reset", "t": 2, "conn": 1, "by": "server", "how": "sideways"},  # line 12
            {"ev": "end", "t": 3},
        )
    )
    assert report.bad_lines() == [6, 10, 11, 12]
    assert report.by_direction["send"] == 3 and report.by_direction["recv"] == 5
    rules = {n: v.rule for n, v in report.violations}
    assert rules[6] == "type" and rules[10] == "unknown-code" and rules[11] == "binary"


def test_the_check_command_on_a_capture(tmp_path: Path) -> None:
    p = tmp_path / "c.jsonl"
    p.write_text("\n".join(_lines(_frame("recv", WELCOME), _frame("recv", TRADE))) + "\n")
    cmd = [sys.executable, "-m", "infoway_mock.schemas", "check", str(p)]
    ok = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 lines, 2 frames (send 0, recv 2), 0 violations" in ok.stdout
    p.write_text(p.read_text() + json.dumps(_frame("recv", {"code": 10002})) + "\n")
    bad = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "line 4: $.data: required" in bad.stdout
