"""The web app at `/` in a real browser: Debian's Chromium driven by Playwright."""
