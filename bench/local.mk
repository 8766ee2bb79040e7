# bench/: see docs/layout.md
