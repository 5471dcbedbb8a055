"""One-click unsubscribe (RFC 8058): marketing mail gets List-Unsubscribe
and List-Unsubscribe-Post (covered by the DKIM signature when the domain
signs), and a POST to the link, without an API token, puts the recipient
on the tenant's suppression list; a tampered link is refused."""
import http.client
import re
import urllib.parse

from conftest import ROOT, API_PORT


def test_one_click_unsubscribe(sink_factory, sluiced_factory):
    sink = sink_factory()
    extra = ("bounces:\n  return_path_domain: bounces.sluice.test\n"
             f"  bounce_rules: \"{ROOT / 'configs/bounce-rules.conf'}\"\n"
             "sender_auth:\n  enforce: none\n"
             f"  unsubscribe_url: \"http://127.0.0.1:{API_PORT}\"\n"
             "  unsubscribe_secret: \"unsub-secret\"\n")
    d = sluiced_factory(api=True, extra=extra).start()
    assert d.api("POST", "/v1/tenants", {"name": "acme"})[0] == 201
    assert d.api("POST", "/v1/tenants/acme/approve")[0] == 200
    st, b = d.api("POST", "/v1/messages?tenant=acme", {"messages": [
        {"from": "news@acme.test", "to": ["Reader@gmail.test"], "subject": "deals",
         "text": "buy", "stream": "marketing"},
        {"from": "news@acme.test", "to": ["other@gmail.test"], "subject": "receipt",
         "text": "thanks", "stream": "transactional"}]})
    assert st == 200 and b["accepted"] == 2, b
    sink.wait_messages(2)
    emls = [f.read_text(errors="replace") for f in sink.save.glob("*.eml")]
    mkt = [m for m in emls if "Subject: deals" in m][0]
    txn = [m for m in emls if "Subject: receipt" in m][0]
    assert "List-Unsubscribe" not in txn
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in mkt
    url = re.search(r"List-Unsubscribe: <([^>]+)>", mkt).group(1)
    path = urllib.parse.urlparse(url).path
    assert path.startswith("/v1/unsubscribe/")

    def post(p):
        c = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=10)
        c.request("POST", p, body=b"List-Unsubscribe=One-Click",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        return r.status

    assert post(path[:-1] + ("0" if path[-1] != "0" else "1")) == 404  # tampered
    assert post(path) == 200
    st, lst = d.api("GET", "/v1/suppressions?tenant=acme")
    assert st == 200
    assert [(e["address"], e["reason"]) for e in lst["items"]] == [
        ("reader@gmail.test", "unsubscribe")]
    # other routes still need a token
    c = http.client.HTTPConnection("127.0.0.1", API_PORT, timeout=10)
    c.request("GET", "/v1/domains")
    assert c.getresponse().status == 401
