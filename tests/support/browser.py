"""Headless Chromium driven over the Chrome DevTools Protocol with aiohttp's websocket
client (no browser-automation dependency): open a page, evaluate JavaScript (waiting on
the page's own promises, not on sleeps), collect console errors, take a screenshot.

Chromium is Debian's package (``apt-get install -y chromium``), which the README's test
command installs when it is missing."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from tests.support.process import terminate

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    env = os.environ.get("MIRRORSIM_CHROMIUM")
    if env:
        return env
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One tab: ``evaluate`` runs an expression (awaiting a promise it returns)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []  # console errors, uncaught exceptions, failed loads
        self.reader: asyncio.Task[None] | None = None
        self.pid = 0  # the browser's process id

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data:
                fut = self.pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    fut.set_result(data)
                continue
            method = data.get("method")
            params = data.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
                self.errors.append("console." + params["type"] + ": " + " ".join(map(str, args)))
            elif method == "Runtime.exceptionThrown":
                d = params.get("exceptionDetails", {})
                self.errors.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                e = params["entry"]
                self.errors.append(f"log: {e.get('text')} {e.get('url', '')}")
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("the browser went away"))

    async def send(self, method: str, params: dict[str, Any] | None = None, *,
                   session: bool = True, timeout: float = 20.0) -> dict[str, Any]:
        i = next(self.ids)
        msg: dict[str, Any] = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session_id
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_str(json.dumps(msg))
        data = await asyncio.wait_for(fut, timeout)
        if "error" in data:
            raise RuntimeError(f"{method}: {data['error']}")
        return data.get("result", {})

    async def evaluate(self, expression: str, timeout: float = 20.0) -> Any:
        res = await self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                   "returnByValue": True}, timeout=timeout)
        if "exceptionDetails" in res:
            raise AssertionError(f"JavaScript failed: {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    async def wait_for(self, js_condition: str, what: str, timeout: float = 15.0) -> Any:
        """Resolve when ``js_condition`` (an expression) is truthy, checked at each DOM
        change in the page; fail after ``timeout`` seconds."""
        expr = """new Promise((resolve, reject) => {
          const check = () => { try { return (COND); } catch (e) { return false; } };
          const first = check();
          if (first) { resolve(first); return; }
          const obs = new MutationObserver(() => { const v = check(); if (v) { obs.disconnect(); resolve(v); } });
          obs.observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
          setTimeout(() => { obs.disconnect(); reject(new Error("timed out")); }, MS);
        })""".replace("MS", str(int(timeout * 1000))).replace("COND", js_condition)
        try:
            return await self.evaluate(expr, timeout=timeout + 5)
        except AssertionError as e:
            raise AssertionError(f"timed out waiting for {what}") from e

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'", "the page to load")

    async def screenshot(self, path: str, width: int = 1400, height: int = 900) -> None:
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        res = await self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(res["data"]))


@contextlib.asynccontextmanager
async def chromium(width: int = 1400, height: int = 900) -> AsyncIterator[Page]:
    """A headless Chromium with one page, closed afterwards."""
    exe = find_chromium()
    if exe is None:
        raise AssertionError("Chromium not found: the README's test command installs it "
                             "(apt-get install -y chromium), or set MIRRORSIM_CHROMIUM")
    profile = tempfile.mkdtemp(prefix="mirrorsim-chromium-")
    proc = await asyncio.create_subprocess_exec(
        exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--no-default-browser-check", "--disable-extensions",
        "--disable-background-networking", "--disable-sync", "--disable-component-update",
        # loopback only: every host name but 127.0.0.1/localhost fails to resolve
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
        "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)
    session: aiohttp.ClientSession | None = None
    page: Page | None = None
    drain: asyncio.Future[None] | None = None
    try:
        assert proc.stderr is not None
        url = None
        seen = []
        while url is None:
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
            if not line:
                raise AssertionError("Chromium exited: " + b"".join(seen).decode(errors="replace"))
            seen.append(line)
            m = re.search(rb"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1).decode()
        drain = asyncio.ensure_future(_drain(proc.stderr))
        session = aiohttp.ClientSession()
        ws = await session.ws_connect(url, max_msg_size=64 * 1024 * 1024)
        page = Page(ws, "")
        page.pid = proc.pid
        page.reader = asyncio.ensure_future(page._read())
        target = await page.send("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = await page.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                   session=False)
        page.session_id = attached["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            await page.send(domain)
        await page.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        yield page
    finally:
        if page is not None:
            with contextlib.suppress(Exception):
                await page.send("Browser.close", session=False, timeout=5)
            await page.ws.close()
            if page.reader is not None:
                page.reader.cancel()
        if session is not None:
            await session.close()
        await terminate(proc)
        if drain is not None:
            drain.cancel()
        shutil.rmtree(profile, ignore_errors=True)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
