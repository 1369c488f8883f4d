"""`make demo` tells the lifecycle story too: hold, recall with a reason, then the history."""

from __future__ import annotations

import io
import json
import re

from dpp_batches import demo


def test_demo_ends_with_a_recall_and_its_history(admin_dsn: str) -> None:
    out = io.StringIO()
    assert demo.run(admin_dsn, out=out) == 0, out.getvalue()[-2000:]
    text = out.getvalue()
    steps = re.findall(r"^\[\d+\] POST /rpc/(\w+)\s+as (\w+)", text, flags=re.MULTILINE)
    assert steps[-3:] == [
        ("set_product_batch_status", "owner"),
        ("set_product_batch_status", "owner"),
        ("list_product_batch_history", "owner"),
    ]
    # the last response printed is the history: recall, hold, update, create (newest first)
    history = json.loads(
        text[text.rindex("    HTTP 200") + len("    HTTP 200") :].split("\ndemo")[0]
    )
    assert [e["action"] for e in history] == ["status", "status", "update", "create"]
    assert history[0]["changes"] == {"status": ["on_hold", "recalled"]}
    assert history[0]["reason"] == "Seam tape defect confirmed by QA"
    assert "demo finished:" in text
