"""Tenants' hourly/daily quotas (control store) refuse further mail with a
temporary error over SMTP and HTTP; other tenants are not affected."""
import smtplib

import pytest

from conftest import message


def smtp_send(i):
    with smtplib.SMTP("127.0.0.1", 2525, timeout=10) as c:
        c.sendmail("a@acme.test", ["q@gmail.test"], message("a@acme.test", "q@gmail.test",
                                                             subject=f"q{i}")[1])


def test_quota_over_smtp_and_http(sink_factory, sluiced_factory):
    sink = sink_factory()
    d = sluiced_factory(api=True).start()
    # The relay tenant "local" comes from the config; give it 2 a day.
    st, t = d.api("PATCH", "/v1/tenants/local", {"quota_day": 2})
    assert st == 200 and t["quota_day"] == 2, t
    smtp_send(1)
    smtp_send(2)
    with pytest.raises(smtplib.SMTPSenderRefused) as e:
        smtp_send(3)
    assert e.value.smtp_code == 451
    assert b"4.7.1" in e.value.smtp_error and b"daily quota of 2" in e.value.smtp_error
    # HTTP injection hits the same quota, as a per-message refusal.
    st, r = d.api("POST", "/v1/messages?tenant=local",
                  {"messages": [{"from": "a@acme.test", "to": ["h@gmail.test"], "text": "x"}]})
    assert st == 200 and r["accepted"] == 0, r
    assert "quota" in r["messages"][0]["reason"]
    # A second tenant with an hourly quota of 1 is counted on its own.
    assert d.api("POST", "/v1/tenants", {"name": "other", "quota_hour": 1})[0] == 201
    assert d.api("POST", "/v1/tenants/other/approve", {})[0] == 200
    st, r = d.api("POST", "/v1/messages?tenant=other",
                  {"messages": [{"from": "o@acme.test", "to": ["o@gmail.test"], "text": "1"},
                                {"from": "o@acme.test", "to": ["o@gmail.test"], "text": "2"}]})
    assert st == 200 and r["accepted"] == 1 and r["rejected"] == 1, r
    # Raising the quota lets mail through again at once.
    assert d.api("PATCH", "/v1/tenants/local", {"quota_day": 0})[0] == 200
    smtp_send(4)
    sink.wait_messages(4)
    assert 'sluice_quota_refusals_total' in d.metrics()
