# Shortcuts for scripts/dev.py (which needs only Python 3.11+; make is optional).
.PHONY: serve test lint screenshots

serve:
	python3 scripts/dev.py serve

test:
	python3 scripts/dev.py test

lint:
	python3 scripts/dev.py lint

# Run the browser tests and save every console screenshot to docs/screenshots/.
screenshots:
	python3 scripts/dev.py screenshots
