# ---- the admin web UI (frontend/): static files the web server serves at /ui/ ----
# `make` builds it with Vite into $(builddir)/frontend/dist when npm and the
# frontend's packages are there (`npm ci` in frontend/; deploy/quickstart.sh
# runs it); otherwise it says so and goes on. A tarball carries the built
# files in frontend/dist, so building from one needs no Node.js.
uidir = $(pkgdatadir)/ui
# The files whose change means the UI must be built again.
UI_INPUTS = src index.html package.json package-lock.json vite.config.ts tsconfig.json

all-local: ui-build
ui-build:
	@src='$(srcdir)/frontend'; out=frontend/dist; \
	if test -d "$$src/node_modules" && command -v npm >/dev/null 2>&1; then \
	  if test ! -f "$$out/index.html" || \
	     test -n "`cd $$src && find $(UI_INPUTS) -newer '$(abs_builddir)/'$$out/index.html 2>/dev/null | head -n 1`"; then \
	    echo "  VITE     $$out"; \
	    (cd "$$src" && npx --no-install tsc --noEmit && \
	     npx --no-install vite build --logLevel warn --emptyOutDir \
	       --outDir '$(abs_builddir)/frontend/dist') || exit 1; \
	  fi; \
	elif test -f "$$src/dist/index.html"; then :; \
	else \
	  echo "frontend: no npm or no frontend/node_modules (npm ci in frontend/): the admin UI is not built"; \
	fi
.PHONY: ui-build

# The built UI: this build's, else the one a tarball carries.
UI_DIST = d=frontend/dist; test -f $$d/index.html || d='$(srcdir)/frontend/dist'

install-data-local: install-ui
install-ui:
	@$(UI_DIST); if test -f "$$d/index.html"; then \
	  for f in `cd $$d && find . -type f`; do \
	    $(MKDIR_P) "$(DESTDIR)$(uidir)/`dirname $$f`" && \
	    $(INSTALL_DATA) "$$d/$$f" "$(DESTDIR)$(uidir)/$$f" || exit 1; \
	  done; \
	fi
uninstall-local: uninstall-ui
uninstall-ui:
	-rm -rf "$(DESTDIR)$(uidir)"

# The tarball gets the sources and the built files: `make dist` needs the UI built.
dist-hook: dist-ui
dist-ui: ui-build
	@$(UI_DIST); test -f "$$d/index.html" || \
	  { echo "make dist: the admin UI is not built (npm ci in frontend/, then make)"; exit 1; }; \
	$(MKDIR_P) "$(distdir)/frontend/dist" && \
	(cd $$d && tar cf - .) | (cd "$(distdir)/frontend/dist" && tar xf -) && \
	(cd "$(srcdir)" && tar cf - --exclude=node_modules --exclude=dist frontend) | \
	  (cd "$(distdir)" && tar xf -)

clean-local: clean-ui
clean-ui:
	-test "$(abs_builddir)" = "$(abs_srcdir)" || rm -rf frontend/dist
.PHONY: install-ui uninstall-ui dist-ui clean-ui

INTEGRATION_TESTS += tests/integration/run_ui.sh

# Regenerates the screenshots README.md shows, from the e2e suite's run.
UI_DOC_SHOTS = dashboard-light dashboard-dark providers-light keys-dark usage-light
ui-screenshots:
	ANTIGW_TEST_ONLY=ui_dark_mode_and_screenshots $(MAKE) check TESTS=tests/integration/run_ui.sh
	$(MKDIR_P) '$(srcdir)/docs'
	for s in $(UI_DOC_SHOTS); do cp frontend/screenshots/$$s.png '$(srcdir)/docs/ui-'$$s.png || exit 1; done
.PHONY: ui-screenshots
