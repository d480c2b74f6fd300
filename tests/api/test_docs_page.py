"""The interactive API docs render in a real (headless Chromium) browser with no outside
network: Swagger UI is served from our own static files, never from a CDN."""

import os
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")


def test_the_docs_page_names_no_outside_address(client):
    page = client.get("/api/docs/").content.decode()
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page


@pytest.mark.django_db(transaction=True)
def test_the_docs_render_their_operations_offline(live_server, tmp_path):
    ours = urlsplit(live_server.url).netloc
    outside: list[str] = []

    def only_ours(route):
        # The browser may reach nothing but this server: anything else is refused and noted.
        if urlsplit(route.request.url).netloc == ours:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.route("**/*", only_ours)
        page.goto(f"{live_server.url}/api/docs/")
        page.wait_for_selector(".opblock", timeout=15_000)

        operations = page.locator(".opblock-summary-path").all_inner_texts()
        assert "/api/v1/usage/summary/" in operations and "/api/v1/regions/failover/" in operations
        assert "Trans Bot back office API" in page.inner_text(".info")
        page.screenshot(path=os.path.join(SCREENSHOTS or str(tmp_path), "api-docs.png"), full_page=True)
        browser.close()
    assert outside == []
