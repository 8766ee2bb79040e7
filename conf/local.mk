# conf/: sample configurations, the systemd units, sysusers.d and tmpfiles.d
# files (docs/admin.md "Installing").
#
# The samples always go to $(docdir)/examples; into $(sysconfdir)/shir only a
# file that is not there yet: a second `make install` never overwrites an
# edited configuration. The units are generated from the configured paths.
shirconfdir = $(sysconfdir)/shir
SHIR_SAMPLES = conf/shird.conf conf/shir-relay.conf conf/diahost.exe.config conf/diawp.exe.config
examplesdir = $(docdir)/examples
dist_examples_DATA = $(SHIR_SAMPLES) conf/sample.pac
systemdunitdir = @systemdsystemunitdir@
systemdunit_DATA = conf/shird.service conf/shir-relay.service
sysusersdir = $(prefix)/lib/sysusers.d
tmpfilesdir = $(prefix)/lib/tmpfiles.d
SHIR_SYSFILES = conf/shir.sysusers conf/shir.tmpfiles conf/shir-relay.sysusers conf/shir-relay.tmpfiles
EXTRA_DIST += conf/shird.service.in conf/shir-relay.service.in $(SHIR_SYSFILES)
# Prometheus: a scrape configuration and alert rules (docs/admin.md "Metrics")
prometheusdir = $(docdir)/examples/prometheus
dist_prometheus_DATA = conf/prometheus/prometheus-shird.yml conf/prometheus/shird-alerts.yml
CLEANFILES += conf/shird.service conf/shir-relay.service

conf_edit = sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@localstatedir[@]|$(localstatedir)|g' -e 's|@runstatedir[@]|$(runstatedir)|g'

conf/shird.service: $(srcdir)/conf/shird.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && $(conf_edit) $(srcdir)/conf/shird.service.in >$@.tmp && mv $@.tmp $@
conf/shir-relay.service: $(srcdir)/conf/shir-relay.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) conf && $(conf_edit) $(srcdir)/conf/shir-relay.service.in >$@.tmp && mv $@.tmp $@

install-data-local: install-shir-conf
install-shir-conf:
	$(MKDIR_P) '$(DESTDIR)$(shirconfdir)' '$(DESTDIR)$(sysusersdir)' '$(DESTDIR)$(tmpfilesdir)'
	@for f in $(SHIR_SAMPLES); do \
	  b=`basename $$f`; \
	  if test -e '$(DESTDIR)$(shirconfdir)'/$$b; then \
	    echo "keeping $(shirconfdir)/$$b (the sample is $(examplesdir)/$$b)"; \
	  else \
	    echo " $(INSTALL_DATA) $$f $(shirconfdir)/$$b"; \
	    $(INSTALL_DATA) $(srcdir)/$$f '$(DESTDIR)$(shirconfdir)'/$$b || exit 1; \
	  fi; \
	done
	$(INSTALL_DATA) $(srcdir)/conf/shir.sysusers '$(DESTDIR)$(sysusersdir)/shir.conf'
	$(INSTALL_DATA) $(srcdir)/conf/shir-relay.sysusers '$(DESTDIR)$(sysusersdir)/shir-relay.conf'
	$(INSTALL_DATA) $(srcdir)/conf/shir.tmpfiles '$(DESTDIR)$(tmpfilesdir)/shir.conf'
	$(INSTALL_DATA) $(srcdir)/conf/shir-relay.tmpfiles '$(DESTDIR)$(tmpfilesdir)/shir-relay.conf'

# An edited configuration stays (as dpkg keeps a conffile on remove).
uninstall-local:
	rm -f '$(DESTDIR)$(sysusersdir)/shir.conf' '$(DESTDIR)$(sysusersdir)/shir-relay.conf' \
	  '$(DESTDIR)$(tmpfilesdir)/shir.conf' '$(DESTDIR)$(tmpfilesdir)/shir-relay.conf'
.PHONY: install-shir-conf

# make distcheck installs as a user: /etc is the default sysconfdir.
AM_DISTCHECK_CONFIGURE_FLAGS = --sysconfdir='$${prefix}/etc' --localstatedir='$${prefix}/var' \
	--runstatedir='$${prefix}/var/run'
EXTRA_DIST += debian tests/prometheus

# builds, lints, installs and purges the Debian packages; sd_notify readiness
INTEGRATION_TESTS += tests/integration/test_package.py
distclean-local: distclean-package
distclean-package:
	-rm -rf tests/package
.PHONY: distclean-package
