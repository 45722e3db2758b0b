"""The page tests' browser: Debian's chromium driven by Playwright (Playwright cannot
download its own browser here), headless, with a fresh profile that trusts exactly the
registry's certificate (by its key's SPKI pin) and nothing else; and what a phone camera
would read from a QR code the page drew (zxing-cpp, independent of the library that drew it).
tests/e2e/conftest.py makes the `browser` fixture of it."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@asynccontextmanager
async def chromium(profile: Path, spki_pin: str) -> AsyncIterator[Any]:
    """A persistent browser context (downloads accepted) in `profile`, removed afterwards.
    Fails the test when chromium is missing (never skips)."""
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once, before any I/O
        raise AssertionError("Debian chromium is missing: `make install` installs it")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=False,
            args=[*ARGS, f"--ignore-certificate-errors-spki-list={spki_pin}"],
            accept_downloads=True)
        try:
            yield context
        finally:
            await context.close()
    shutil.rmtree(profile, ignore_errors=True)


def read_qr_image(data: bytes) -> list[str]:
    """The texts of the QR codes in an image (PNG, or a screenshot)."""
    import zxingcpp
    from PIL import Image

    # QR codes only, as a wallet's scanner reads them: with every format on, zxing now and
    # then also "found" a short linear barcode in the QR code's own modules.
    qr_only = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
    image = Image.open(io.BytesIO(data))
    return [code.text for code in zxingcpp.read_barcodes(image, formats=qr_only)]


async def read_qr(element: Any) -> list[str]:
    """What a phone camera would read from a QR code as the browser drew it."""
    return read_qr_image(await element.screenshot())
