# mk/packaging.mk — install/uninstall, the man page, the container smoke test
# and the packaging test suite. Included by the main Makefile (which defines
# BUILD, PREFIX and VERSION). See docs/deployment.md.
#
#   make install   [PREFIX=/usr/local] [DESTDIR=]   binary, man page, config, unit
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]
#   make man                                        $(BUILD)/deconvd.8 from --help
#   make packaging-test                             tests/packaging/*, "N passed, N failed"
#   make docker-smoke                               build + run the image (docker or podman)
#   make docker-base                                its base image where no registry has it

DESTDIR    ?=
SYSCONFDIR ?= /etc
UNITDIR    ?= /lib/systemd/system
BINDIR     ?= $(PREFIX)/bin
MANDIR     ?= $(PREFIX)/share/man
INSTALL    ?= install

PKG_CONFDIR := $(SYSCONFDIR)/deconvd
PKG_MODELS  := $(notdir $(wildcard config/models/*.json config/models/*.npy))
PKG_MAN     := $(BUILD)/deconvd.8
PKG_CONF    := $(BUILD)/packaging/deconvd.json
PKG_UNIT    := $(BUILD)/packaging/deconvd.service

.PHONY: man install uninstall packaging-test docker-smoke docker-base

man: $(PKG_MAN)

$(PKG_MAN): $(BUILD)/deconvd systemd/gen-manpage.sh
	systemd/gen-manpage.sh $(BUILD)/deconvd $(VERSION) > $@.tmp && mv $@.tmp $@

# Both depend on PREFIX/SYSCONFDIR, which make cannot see change: always
# regenerated (cheap).
.PHONY: packaging-force
packaging-force:

# The example config with models_dir made absolute (the installed tree).
$(PKG_CONF): config/deconvd.json packaging-force
	@mkdir -p $(@D)
	sed 's|"models_dir":[^,}]*|"models_dir": "$(PKG_CONFDIR)/models"|' $< > $@.tmp
	grep -q '"models_dir": "$(PKG_CONFDIR)/models"' $@.tmp || \
	  { echo "packaging: could not set models_dir in $<" >&2; rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# The unit with ExecStart following PREFIX and SYSCONFDIR.
$(PKG_UNIT): systemd/deconvd.service packaging-force
	@mkdir -p $(@D)
	sed -e 's|^ExecStart=/usr/local/bin/deconvd --config /etc/deconvd/deconvd.json$$|ExecStart=$(BINDIR)/deconvd --config $(PKG_CONFDIR)/deconvd.json|' $< > $@.tmp
	grep -qx 'ExecStart=$(BINDIR)/deconvd --config $(PKG_CONFDIR)/deconvd.json' $@.tmp || \
	  { echo "packaging: could not set ExecStart in $<" >&2; rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# An existing deconvd.json that differs from ours is an admin's edit: kept,
# and ours is written next to it as deconvd.json.dist.
install: $(BUILD)/deconvd $(PKG_MAN) $(PKG_CONF) $(PKG_UNIT)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(PKG_CONFDIR)/models
	$(INSTALL) -m 0755 $(BUILD)/deconvd $(DESTDIR)$(BINDIR)/deconvd
	$(INSTALL) -m 0644 $(PKG_MAN) $(DESTDIR)$(MANDIR)/man8/deconvd.8
	$(INSTALL) -m 0644 $(PKG_UNIT) $(DESTDIR)$(UNITDIR)/deconvd.service
	@if [ -f $(DESTDIR)$(PKG_CONFDIR)/deconvd.json ] && \
	    ! cmp -s $(PKG_CONF) $(DESTDIR)$(PKG_CONFDIR)/deconvd.json; then \
	  echo "install: keeping modified $(DESTDIR)$(PKG_CONFDIR)/deconvd.json; new one is deconvd.json.dist"; \
	  echo "$(INSTALL) -m 0644 $(PKG_CONF) $(DESTDIR)$(PKG_CONFDIR)/deconvd.json.dist"; \
	  $(INSTALL) -m 0644 $(PKG_CONF) $(DESTDIR)$(PKG_CONFDIR)/deconvd.json.dist; \
	else \
	  echo "$(INSTALL) -m 0644 $(PKG_CONF) $(DESTDIR)$(PKG_CONFDIR)/deconvd.json"; \
	  $(INSTALL) -m 0644 $(PKG_CONF) $(DESTDIR)$(PKG_CONFDIR)/deconvd.json; \
	fi
	$(INSTALL) -m 0644 $(addprefix config/models/,$(PKG_MODELS)) $(DESTDIR)$(PKG_CONFDIR)/models/
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then \
	  echo "install: now run: systemctl daemon-reload && systemctl enable --now deconvd"; fi

# Removes what install wrote. A modified deconvd.json and files an admin added
# to the models directory stay (with their directories).
uninstall: $(PKG_CONF)
	rm -f $(DESTDIR)$(BINDIR)/deconvd $(DESTDIR)$(MANDIR)/man8/deconvd.8 \
	  $(DESTDIR)$(UNITDIR)/deconvd.service $(DESTDIR)$(PKG_CONFDIR)/deconvd.json.dist \
	  $(addprefix $(DESTDIR)$(PKG_CONFDIR)/models/,$(PKG_MODELS))
	@if cmp -s $(PKG_CONF) $(DESTDIR)$(PKG_CONFDIR)/deconvd.json; then \
	  echo "rm -f $(DESTDIR)$(PKG_CONFDIR)/deconvd.json"; rm -f $(DESTDIR)$(PKG_CONFDIR)/deconvd.json; \
	elif [ -f $(DESTDIR)$(PKG_CONFDIR)/deconvd.json ]; then \
	  echo "uninstall: keeping modified $(DESTDIR)$(PKG_CONFDIR)/deconvd.json"; fi
	@rmdir $(DESTDIR)$(PKG_CONFDIR)/models 2>/dev/null || true
	@rmdir $(DESTDIR)$(PKG_CONFDIR) 2>/dev/null || true

packaging-test: all
	@DECONVD_BIN=$(BUILD)/deconvd BUILD=$(BUILD) tests/packaging/run

docker-smoke:
	docker/smoke.sh

# debian:bookworm-slim for the first engine that works: pulled, else made with
# debootstrap (root; ~3 min once). test_docker.sh does the same when needed.
docker-base:
	@for e in $${CONTAINER_ENGINE:-docker podman}; do \
	  if command -v $$e >/dev/null 2>&1 && $$e info >/dev/null 2>&1; then \
	    exec sh tests/packaging/docker-base.sh $$e; fi; \
	done; echo "docker-base: no working docker or podman"; exit 1
