# src/admin.mk: see docs/layout.md
