# proxy/: see docs/layout.md
