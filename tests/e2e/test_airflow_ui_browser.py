"""The Airflow UI users open (`make airflow`), in Debian's headless Chromium: logged in with the simple
auth manager's token, the trigger form of `jhu_backfill` shows its Params. A screenshot is kept in
.local/test-artifacts/."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.analytics.headless import Browser

pytestmark = pytest.mark.stack
ARTIFACTS = Path(__file__).resolve().parents[2] / ".local" / "test-artifacts"
PARAMS = ("start_date", "end_date", "force")
CLICK_TRIGGER = """(() => {
  const button = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Trigger');
  if (button) { button.click(); return true; }
  return false;
})()"""


def test_the_trigger_form_of_jhu_backfill_shows_its_params(airflow_server, api):
    token = api.request("POST", "/auth/token", json={"username": "admin", "password": airflow_server.password()})
    with Browser.launch() as browser:
        page = browser.open("about:blank")
        page.send("Network.enable")
        page.send("Network.setCookie", {"name": "_token", "value": token["access_token"],
                                        "url": airflow_server.base_url, "httpOnly": True})
        page.send("Page.navigate", {"url": f"{airflow_server.base_url}/dags/jhu_backfill"})
        try:
            page.wait_for(CLICK_TRIGGER, timeout=60)
            found = page.wait_for(
                "(() => { const text = document.body.innerText;"
                f" return {list(PARAMS)!r}.every(p => text.includes(p)) && text; }})()", timeout=60)
        finally:
            shot = page.screenshot(ARTIFACTS / "airflow-trigger-jhu_backfill.png")
            print(f"screenshot: {shot}")
    assert "jhu_backfill" in found
    assert page.exceptions == []
