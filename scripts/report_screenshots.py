"""Screenshot every page of the "Results" category of a Snakemake report in headless Chromium.

A check of what a reader sees: the run page, accuracy, alignment, Tables 4–5, quality, routers,
status and every query, each as rendered by the browser (not as HTML text). Needs Playwright
(``pip install playwright``, in a scratch environment: it is not a project dependency) and a
Chromium binary (``--chromium``; Playwright's own download is not needed)::

    python scripts/report_screenshots.py report.html --out shots/ --chromium /usr/bin/chromium

Prints each page's title and first lines of text; writes one PNG per page.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, default=Path("shots"))
    ap.add_argument("--chromium", default="chromium", help="the Chromium executable")
    ap.add_argument("--category", default="Results", help="the report category whose pages to screenshot")
    ap.add_argument("--lines", type=int, default=12, help="lines of each page's text to print")
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.goto(args.report.resolve().as_uri())
        page.wait_for_timeout(2000)
        page.screenshot(path=str(args.out / "00-landing.png"))
        side = page.locator("nav").first
        side.locator(f"a:has-text('{args.category}')").first.click()
        page.wait_for_timeout(800)
        titles = [t.strip() for t in side.locator("a").all_inner_texts() if re.match(r"\s*\d+\.", t)]
        print(f"{args.category}: {len(titles)} pages")
        for i, title in enumerate(titles, 1):
            page.goto(args.report.resolve().as_uri())  # from the start: the menu changes once a page is open
            page.wait_for_timeout(1500)
            side.locator(f"a:has-text('{args.category}')").first.click()
            page.wait_for_timeout(500)
            side.locator("a", has_text=title).first.click()
            page.wait_for_timeout(500)
            side.locator("a[iconname=eye]").first.click()  # show the page's (first) item
            page.wait_for_timeout(2500)  # the page's tables (itables) render after load
            name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
            shot = args.out / f"{i:02d}-{name}.png"
            page.screenshot(path=str(shot), full_page=False)
            frame = page.frames[-1]  # the report shows an HTML item in an iframe
            body = frame.locator("body").inner_text()
            text = [ln for ln in body.splitlines() if ln.strip()][: args.lines]
            print(f"\n== {title} -> {shot}")
            print("\n".join(f"   {ln[:160]}" for ln in text))
        browser.close()


if __name__ == "__main__":
    main()
