"""The self-contained HTML audit report: charts, embedded data, escaping, no external resources."""

from __future__ import annotations

import json
import re

import nacl.signing
import pytest

from splitkey.audit import render_report, write_report
from tests.test_audit_support import WORKER, build_two_day_logs, denial, open_log, use_record


@pytest.fixture
def logs(tmp_path):
    return build_two_day_logs(tmp_path)


def test_report_has_charts_and_data(logs):
    html = render_report(logs["keystore"], logs["secret"], title="Audit <test>")

    for chart_id in ("uses-by-workspace", "uses-by-actor", "denials-by-reason", "findings-by-kind"):
        assert re.search(rf'<svg class="chart" id="{chart_id}"[^>]*>.*?</svg>', html, re.S), chart_id
    data = json.loads(re.search(r'<script type="application/json" id="audit-data">(.*?)</script>', html).group(1))
    by_workspace = data["uses-by-workspace"]
    assert by_workspace["categories"] == ["2027-01-15", "2027-01-16"]
    assert by_workspace["series"]["ws-0001"] == {"2027-01-15": 5}
    assert by_workspace["series"]["ws-0003"] == {"2027-01-16": 12}
    assert sum(data["uses-by-actor"]["series"][WORKER].values()) == 17
    assert data["denials-by-reason"]["series"] == {"FetchKey: record revoked": {"2027-01-15": 1}}
    assert data["findings-by-kind"]["series"]["high"]["missing-fetch"] == 1
    assert html.count('class="bar"') >= 6
    assert '<table id="findings">' in html
    assert "req-no-fetch" in html
    assert "<title>Audit &lt;test&gt;</title>" in html


def test_report_is_self_contained_and_escaped(tmp_path):
    keystore = open_log(tmp_path / "ks.sqlite3", "keystore-1", nacl.signing.SigningKey.generate())
    secret = open_log(tmp_path / "ss.sqlite3", "secret-1", nacl.signing.SigningKey.generate())
    hostile = "<script>alert(1)</script>"
    keystore.append(use_record("req-1", workspace=hostile))
    keystore.append(denial(reason=f"</script>{hostile}"))
    keystore.close()
    secret.close()

    path = write_report(tmp_path / "report.html", keystore, secret)
    html = path.read_text()

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1
    assert not re.search(r"(?:src|href)\s*=", html)
    assert "http://" not in html
    assert "https://" not in html
    assert "Content-Security-Policy" in html
