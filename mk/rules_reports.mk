# mk/rules_reports.mk -- reports module rules (included by the Makefile).
#
#   make plots-check [OUT=reports/out]
#       headless Chromium screenshot of OUT/index.html into
#       OUT/index.png, failing when the page logs any console message.
#       Runs `make plots` first when OUT/index.html is missing.  Installs
#       Debian's chromium package when it is not there (root or sudo).
.PHONY: plots-check chromium-deps
CHROMIUM ?= chromium

chromium-deps:
	@if ! command -v $(CHROMIUM) >/dev/null 2>&1; then \
	  echo "plots-check: installing chromium"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

plots-check: chromium-deps
	@test -f '$(OUT)/index.html' || $(MAKE) --no-print-directory plots OUT='$(OUT)'
	@ud=$$(mktemp -d); log=$$(mktemp); \
	timeout 120 $(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	  --disable-background-networking --disable-component-update --disable-sync --user-data-dir=$$ud \
	  --enable-logging=stderr --v=0 --hide-scrollbars --window-size=1280,2000 \
	  --screenshot='$(abspath $(OUT))/index.png' 'file://$(abspath $(OUT))/index.html' 2>$$log >/dev/null; \
	rc=$$?; rm -rf $$ud; \
	if grep -E ':CONSOLE|Uncaught|Page load failed' $$log; then echo "plots-check: console errors on $(OUT)/index.html"; rm -f $$log; exit 1; fi; \
	rm -f $$log; \
	if [ $$rc != 0 ] || [ ! -s '$(OUT)/index.png' ]; then echo "plots-check: chromium failed (exit $$rc)"; exit 1; fi; \
	echo "plots-check: $(OUT)/index.html renders without console errors; screenshot $(OUT)/index.png"
