# src/authoring.mk: see docs/layout.md
