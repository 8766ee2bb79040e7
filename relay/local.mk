# relay/: see docs/layout.md
