# src/listener.mk: see docs/layout.md
