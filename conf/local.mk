# conf/: sample configuration and the systemd unit, installed as samples
shirconfdir = $(sysconfdir)/shir
dist_shirconf_DATA = conf/shird.conf
systemdunitdir = $(prefix)/lib/systemd/system
dist_systemdunit_DATA = conf/shird.service
EXTRA_DIST += conf/diahost.exe.config conf/sample.pac
