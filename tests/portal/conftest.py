"""Browser tests of both portals: headless Chromium (Debian's /usr/bin/chromium, never a
downloaded one) against the real app, database, Temporal worker and relay."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from stack.ephemeral import PgServer
from tests.portal.harness import CHROMIUM, CHROMIUM_ARGS, PortalStack, create_database, drop_database, running_portal


@pytest.fixture(scope="package")
def portal_stack(
    pg_server: PgServer,
    migrated_template: str,
    temporal_address: str,
    temporal_ui_port: int,
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PortalStack]:
    url = create_database(pg_server, migrated_template)
    try:
        work = Path(tmp_path_factory.mktemp("portal"))
        with running_portal(url, temporal_address, kafka_bootstrap, work, temporal_ui_port=temporal_ui_port) as stack:
            # The inbox is part of what is tested: OTP codes come through the real relay here
            # (reading them from the outbox is only the screenshot script's fallback).
            log = (work / "relay.log").read_text(errors="replace")[-2000:]
            assert stack.relay_running, f"python -m relay did not start:\n{log}"
            yield stack
    finally:
        drop_database(pg_server, url)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (scripts/system-deps.sh installs it)")
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()


class Contexts:
    """Browser contexts (separate cookie jars: separate people) closed after the test."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[BrowserContext] = []

    def page(self, **kwargs: object) -> Page:
        context = self.browser.new_context(**kwargs)  # type: ignore[arg-type]
        context.set_default_timeout(30_000)
        self.opened.append(context)
        return context.new_page()


@pytest.fixture
def people(browser: Browser) -> Iterator[Contexts]:
    contexts = Contexts(browser)
    try:
        yield contexts
    finally:
        for context in contexts.opened:
            context.close()
